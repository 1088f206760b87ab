"""MQTT, one layer for the bridge, the shutdown client and the tools.

* :mod:`~bridge.mqtt.contract` — every topic and payload (docs/mqtt-contract.md);
* :mod:`~bridge.mqtt.signing` — every HMAC signature, made and checked;
* :mod:`~bridge.mqtt.commands` — the one command verifier (and the bridge's dispatcher);
* :mod:`~bridge.mqtt.paho` — the one place a paho client is built; reconnecting is
  paho's backoff, configured there;
* :mod:`~bridge.mqtt.link` — the long-lived connection with a status topic (bridge, client);
* :mod:`~bridge.mqtt.session` — the short synchronous session of the tools (no retries);
* :mod:`~bridge.mqtt.publisher`, :mod:`~bridge.mqtt.producers`, :mod:`~bridge.mqtt.spool`,
  :mod:`~bridge.mqtt.discovery`, :mod:`~bridge.mqtt.entities` — what the bridge publishes;
* :mod:`~bridge.mqtt.mdns` — finding and advertising the broker.
"""
