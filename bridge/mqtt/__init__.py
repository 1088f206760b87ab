"""MQTT: the contract (topics, payloads), discovery, the publisher and the durable spool."""
