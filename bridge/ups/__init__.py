"""A UPS as a source on the bridge: read through a local upsd (NUT), published on MQTT.

``report`` turns NUT variables into a :class:`~bridge.ups.report.UpsReport` and the
``<base>/<device_id>/ups`` payload (pure); ``reader`` polls upsd with NUT's own Python
client (PyNUTClient) on a thread.
"""
