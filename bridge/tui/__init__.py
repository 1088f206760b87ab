"""The live terminal view shared by ``powerbridge watch`` and ``powerbridge demo``.

``fleet`` keeps what is known of every bridge and client (pure), ``render`` turns
it into text and owns the terminal, ``observer`` feeds the fleet from MQTT.
"""
