"""The archive's tables, shared by both databases (the samples table is each dialect's own)."""

from __future__ import annotations

from typing import Final

from bridge.archive.records import QUANTITIES

QUANTITY_COLUMNS: Final = ", ".join(f"{q} DOUBLE PRECISION" for q in QUANTITIES)

COMMON: Final = """
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    newest_ts BIGINT,
    newest_seq BIGINT,
    high_seq BIGINT,
    online INTEGER,
    mains_state TEXT,
    mains_since BIGINT,
    mains_seq BIGINT,
    outage_count INTEGER,
    health TEXT,
    health_time BIGINT,
    deployment TEXT,
    latitude DOUBLE PRECISION,
    longitude DOUBLE PRECISION,
    gaps_filled BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    device TEXT NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    mains_seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT,
    duration_s DOUBLE PRECISION,
    PRIMARY KEY (device, seq)
);
CREATE TABLE IF NOT EXISTS outages (
    device TEXT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT,
    duration_s DOUBLE PRECISION,
    PRIMARY KEY (device, started)
);
CREATE TABLE IF NOT EXISTS deployments (
    device TEXT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT,
    name TEXT NOT NULL,
    latitude DOUBLE PRECISION NOT NULL,
    longitude DOUBLE PRECISION NOT NULL,
    software_version TEXT NOT NULL,
    config_sha256 TEXT NOT NULL,
    PRIMARY KEY (device, started)
);
CREATE TABLE IF NOT EXISTS health (
    device TEXT NOT NULL,
    time BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (device, time)
);
CREATE TABLE IF NOT EXISTS gaps (
    device TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    opened BIGINT NOT NULL,
    status TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    last_request BIGINT,
    closed BIGINT,
    PRIMARY KEY (device, first_seq)
);
CREATE TABLE IF NOT EXISTS daily (
    device TEXT NOT NULL,
    day BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    PRIMARY KEY (device, day)
);
"""
