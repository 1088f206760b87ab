"""Speaking Network UPS Tools' network protocol: each watched bridge served as a read-only UPS.

``protocol`` parses and answers lines (pure), ``variables`` maps a bridge's state to NUT
variables (pure), ``feed`` turns the bridge's MQTT topics into that state with the shutdown
policy's own decision, ``server`` is the asyncio TCP server, ``config`` its ``nut.yaml``.
"""
