"""``decode_sample_rows``: the archive's form of a ``samples`` batch, as strict as the other,
with either JSON parser: orjson (the archive's extra, installed for the tests) or the standard
library's (a machine without the extra)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.errors import PayloadError
from bridge.mqtt.contract import (
    READING_FIELDS,
    SamplePayload,
    codec,
    decode_sample_rows,
    decode_samples,
    encode_samples,
)

T0 = datetime(2026, 3, 14, 11, 0, tzinfo=UTC)


@pytest.fixture(params=["orjson", "json"], autouse=True)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "json":
        monkeypatch.setattr(codec, "_parse_json_fast", codec._parse_json)
    else:
        assert codec._parse_json_fast is not codec._parse_json, "orjson is not installed"
    return str(request.param)


def test_rows_carry_what_decode_samples_reads() -> None:
    batch = [
        SamplePayload(7, T0, 1, {"power_w": 118.4, "voltage_v": 229.8}),
        SamplePayload(8, T0 + timedelta(milliseconds=1500), 2, {"energy_wh": 15.0}),
    ]
    raw = encode_samples("rack-a", batch)
    decoded = decode_sample_rows(raw)
    assert decoded.device == "rack-a"
    for row, sample in zip(decoded.rows, decode_samples(raw), strict=True):
        assert row[:4] == (
            "rack-a",
            sample.seq,
            round(sample.ts.timestamp() * 1000),
            sample.channel,
        )
        assert row[4:] == tuple(sample.values.get(q) for q in READING_FIELDS)


@pytest.mark.parametrize(
    "sample",
    [
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":"x"}',
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":1e400}',
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":true}',
        '{"seq":true,"ch":1,"ts":"2026-03-14T11:00:00Z"}',
        '{"seq":-1,"ch":1,"ts":"2026-03-14T11:00:00Z"}',
        '{"seq":1,"ch":"1","ts":"2026-03-14T11:00:00Z"}',
        '{"seq":1,"ch":256,"ts":"2026-03-14T11:00:00Z"}',
        '{"seq":1,"ch":-1,"ts":"2026-03-14T11:00:00Z"}',
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00"}',
        '{"seq":1,"ch":1}',
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":NaN}',
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":-Infinity}',
        '{"seq":123456789012345678901234567890,"ch":1,"ts":"2026-03-14T11:00:00Z"}',
        '{"seq":1,"ch":1,"ts":"2026-03-14T11:00:00Z","power_w":1}{',
        "[1]",
    ],
)
def test_anything_off_the_contract_is_a_payload_error(sample: str) -> None:
    raw = ('{"v":1,"device":"a","samples":[' + sample + "]}").encode()
    with pytest.raises(PayloadError):
        decode_sample_rows(raw)
    with pytest.raises(PayloadError):
        decode_samples(raw)


def test_the_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(PayloadError, match="exceeds"):
        decode_sample_rows(b" " * 2000, max_size=1000)


def test_bytes_that_are_not_utf8_are_a_payload_error() -> None:
    raw = b'{"v":1,"device":"a\xff","samples":[]}'
    with pytest.raises(PayloadError, match="not JSON"):
        decode_sample_rows(raw)


def test_both_parsers_read_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [
        SamplePayload(s, T0 + timedelta(seconds=s), 1, {"power_w": 0.1 * s, "energy_wh": 1e6 + s})
        for s in range(1, 200)
    ]
    raw = encode_samples("rack-a", batch)
    fast = decode_sample_rows(raw)
    monkeypatch.setattr(codec, "_parse_json_fast", codec._parse_json)
    assert decode_sample_rows(raw) == fast
