"""The broker directory: what `broker init`/`add-*` create, keep, restore and refuse."""

from __future__ import annotations

import os
import stat
import sys
from importlib import resources
from pathlib import Path

import pytest

from bridge.broker import passwd, tls
from bridge.broker.acl import IDENTITY_MARKER, acl_users
from bridge.broker.directory import BrokerDirectory, BrokerSetupError, Report, render_conf
from bridge.broker.runner import shipped_file
from bridge.errors import NotAvailableError, UsageError

REPO = Path(__file__).resolve().parents[2]
HOSTS = ["broker.example", "192.0.2.10"]


def make(path: Path, **kwargs: object) -> tuple[BrokerDirectory, Report]:
    store = BrokerDirectory(path)
    report = store.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        hosts=HOSTS,
        **kwargs,  # type: ignore[arg-type]
    )
    return store, report


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def entry(store: BrokerDirectory, user: str) -> str:
    lines = store.passwd.read_text().splitlines()
    return next(line for line in lines if line.startswith(f"{user}:"))


def test_init_creates_every_file_with_safe_modes(tmp_path: Path) -> None:
    store, report = make(tmp_path / "b", bridges=["rack-a"], clients=["office"])
    users = ["homeassistant", "archiver", "bridge-rack-a", "client-office"]
    for user in users:
        password = store.password(user)
        assert password is not None
        assert len(password) >= 32
        assert mode(store.credential_file(user)) == 0o600
        assert passwd.verify_entry(entry(store, user), user, password)
        assert report.outcome(f"password: {user}") == "created"
    assert mode(store.credentials) == 0o700
    assert mode(store.ca_key) == 0o600
    assert mode(store.ca_crt) == 0o644
    assert mode(store.server_crt) == 0o644
    # What the broker reads is never world-readable (group mosquitto only when run as root).
    for path in (store.passwd, store.acl, store.server_key):
        assert mode(path) & 0o007 == 0, path
        assert mode(path) & 0o600 == 0o600, path
    assert acl_users(store.acl.read_text()) >= set(users)
    assert len({store.password(u) for u in users}) == len(users)  # all different


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_as_root_the_broker_group_reads_its_files(tmp_path: Path) -> None:
    import grp

    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        pytest.skip("no mosquitto group on this machine")
    store, _ = make(tmp_path / "b")
    for path in (store.passwd, store.acl, store.server_key):
        assert (path.stat().st_gid, mode(path)) == (gid, 0o640), path
    for path in (store.ca_key, store.credential_file("homeassistant")):
        assert (path.stat().st_uid, mode(path)) == (0, 0o600), path


def test_rerun_keeps_every_secret_and_says_so(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b", bridges=["rack-a"], clients=["office"])
    before = snapshot(store.path)
    _, again = make(tmp_path / "b", bridges=["rack-a"], clients=["office"])
    assert snapshot(store.path) == before
    outcomes = {a.subject: a.outcome for a in again.actions}
    assert outcomes["password: bridge-rack-a"] == "kept"
    assert outcomes["acl: user bridge-rack-a"] == "kept"
    assert outcomes[str(store.ca_crt)] == "kept"
    assert outcomes[str(store.server_crt)] == "kept"
    assert not any(a.outcome in ("created", "rotated", "added") for a in again.actions)
    assert "not rotated" in str(next(a for a in again.actions if a.subject.startswith("password")))


def test_add_identity_appends_and_is_idempotent(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    report = store.add_client("lab")
    assert report.outcome("acl: user client-lab") == "added"
    assert report.outcome("password: client-lab") == "created"
    acl = store.acl.read_text()
    block = acl.split(IDENTITY_MARKER)[1]
    assert "user client-lab\ntopic read powerbridge/+/status\n" in block
    assert "topic write homeassistant/+/client-lab/#" in block
    password = store.password("client-lab")
    again = store.add_client("lab")
    assert again.outcome("acl: user client-lab") == "kept"
    assert again.outcome("password: client-lab") == "kept"
    assert store.acl.read_text() == acl
    assert store.password("client-lab") == password


def test_rotate_replaces_only_that_password(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b", bridges=["rack-a"], clients=["office"])
    old = store.password("client-office")
    other = entry(store, "bridge-rack-a")
    report = store.add_client("office", rotate=True)
    assert report.outcome("password: client-office") == "rotated"
    new = store.password("client-office")
    assert new is not None
    assert new != old
    assert passwd.verify_entry(entry(store, "client-office"), "client-office", new)
    assert entry(store, "bridge-rack-a") == other


def test_lost_hash_is_restored_from_the_credentials_file(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b", bridges=["rack-a"])
    kept = store.passwd.read_text().splitlines()
    store.passwd.write_text("\n".join(x for x in kept if not x.startswith("bridge-")) + "\n")
    report = store.add_bridge("rack-a")
    assert report.outcome("password: bridge-rack-a") == "restored"
    password = store.password("bridge-rack-a")
    assert password is not None
    assert passwd.verify_entry(entry(store, "bridge-rack-a"), "bridge-rack-a", password)


def test_lost_credentials_file_keeps_the_hash_and_warns(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b", bridges=["rack-a"])
    line = entry(store, "bridge-rack-a")
    store.credential_file("bridge-rack-a").unlink()
    report = store.add_bridge("rack-a")
    assert report.outcome("password: bridge-rack-a") == "warning"
    assert "rotate" in report.warnings[0].detail
    assert entry(store, "bridge-rack-a") == line
    assert not store.credential_file("bridge-rack-a").exists()


def test_mismatched_credentials_file_is_reported_not_fixed(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b", bridges=["rack-a"])
    store.credential_file("bridge-rack-a").write_text("something else\n")
    before = snapshot(store.path)
    report = store.add_bridge("rack-a")
    assert report.outcome("password: bridge-rack-a") == "warning"
    assert snapshot(store.path) == before


def test_lines_added_by_hand_are_preserved(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    hand_entry = passwd.hash_entry("alice", "secret")
    store.passwd.write_text(store.passwd.read_text() + hand_entry + "\n")
    store.acl.write_text(store.acl.read_text() + "\nuser alice\ntopic read powerbridge/#\n")
    store.add_bridge("rack-a")
    assert hand_entry in store.passwd.read_text().splitlines()
    assert "user alice\ntopic read powerbridge/#\n" in store.acl.read_text()
    assert {"alice", "bridge-rack-a"} <= acl_users(store.acl.read_text())


@pytest.mark.parametrize(
    ("kind", "ident"),
    [
        ("bridge", "clients"),  # the clients' topic level
        ("bridge", "client-office"),  # a shutdown client's discovery node id
        ("client", "all"),  # commands to every client
        ("bridge", "a/b"),
        ("bridge", "rack+"),
        ("client", "#"),
        ("client", ""),
        ("client", "x" * 65),
        ("bridge", "with space"),
    ],
)
def test_unsafe_or_reserved_ids_are_refused(tmp_path: Path, kind: str, ident: str) -> None:
    store, _ = make(tmp_path / "b")
    before = snapshot(store.path)
    with pytest.raises(UsageError):
        store.add_bridge(ident) if kind == "bridge" else store.add_client(ident)
    assert snapshot(store.path) == before


def test_add_before_init_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(BrokerSetupError, match="powerbridge broker init"):
        BrokerDirectory(tmp_path / "nothing").add_client("office")


def test_foreign_acl_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "acl").write_text("user someone\ntopic readwrite #\n")
    with pytest.raises(BrokerSetupError, match="not made by powerbridge"):
        make(tmp_path / "b")


def test_custom_base_topic_and_prefix_reach_every_block(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b", base="home/power", prefix="ha")
    store.add_bridge("rack-a")
    store.add_client("office")
    acl = store.acl.read_text()
    topics = [line.split()[2] for line in acl.splitlines() if line.startswith("topic ")]
    assert topics
    assert all(t.startswith(("home/power/", "ha/")) for t in topics), topics
    assert "topic write ha/+/rack-a/#" in acl
    assert "topic read home/power/clients/all/cmd/#" in acl
    assert store.topics() == ("home/power", "ha")


def test_conf_points_into_the_directory(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    text = store.conf.read_text()
    assert "/etc/mosquitto/powerbridge" not in text
    root = store.path.resolve()
    for name in ("passwd", "acl", "ca.crt", "server.crt", "server.key"):
        assert f" {root / name}\n" in text, name
    default = render_conf(shipped_file("powerbridge.conf"), Path("/etc/mosquitto/powerbridge"))
    assert default == shipped_file("powerbridge.conf")


def test_server_certificate_names_the_hosts_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    info = tls.describe(store.server_crt.read_bytes())
    assert list(info.hosts) == HOSTS
    assert 800 < info.days_left() <= tls.SERVER_DAYS
    assert tls.signed_by(store.server_crt.read_bytes(), store.ca_crt.read_bytes())
    other = tls.make_ca("another")
    assert not tls.signed_by(store.server_crt.read_bytes(), other.cert_pem)


def test_new_host_warns_until_a_new_server_certificate_is_asked_for(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    ca = store.ca_crt.read_bytes()
    old = store.server_crt.read_bytes()
    report = store.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        hosts=["new-name.example"],
    )
    assert any("new-name.example" in w.detail for w in report.warnings)
    assert store.server_crt.read_bytes() == old
    report = store.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        hosts=["new-name.example"],
        new_server_cert=True,
    )
    assert report.outcome(str(store.server_crt)) == "rotated"
    assert tls.describe(store.server_crt.read_bytes()).hosts == ("new-name.example",)
    assert store.ca_crt.read_bytes() == ca  # clients keep trusting the same CA
    assert tls.signed_by(store.server_crt.read_bytes(), ca)


def test_server_certificate_cannot_be_issued_without_the_ca_key(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    store.ca_key.unlink()
    store.server_crt.unlink()
    with pytest.raises(BrokerSetupError, match=r"ca\.key is missing"):
        make(tmp_path / "b")


def test_invalid_host_is_refused() -> None:
    with pytest.raises(ValueError, match="neither"):
        tls.check_host("bad host!")
    assert tls.check_host("192.0.2.1") == "192.0.2.1"
    assert tls.check_host("pi.local.") == "pi.local"


def test_the_packaged_copy_equals_the_shipped_files() -> None:
    """`pip install powerbridge` ships bridge/broker/shipped/: it must be mosquitto/ exactly."""
    for name in ("powerbridge.conf", "acl"):
        packaged = resources.files("bridge.broker").joinpath("shipped", name).read_text()
        assert packaged == (REPO / "mosquitto" / name).read_text(), name
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"broker/shipped/acl"' in pyproject


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_rerun_after_installing_mosquitto_fixes_access_not_secrets(tmp_path: Path) -> None:
    import grp

    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        pytest.skip("no mosquitto group on this machine")
    early = BrokerDirectory(tmp_path / "b", group="no-such-group-here")
    report = early.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        hosts=HOSTS,
    )
    assert report.outcome("group no-such-group-here") == "warning"
    assert mode(early.passwd) == 0o600
    before = snapshot(early.path)
    store, again = make(tmp_path / "b")
    assert snapshot(store.path) == before  # same content, same secrets
    for path in (store.passwd, store.acl, store.server_key):
        assert any(a.subject == str(path) and a.outcome == "updated" for a in again.actions)
        assert (path.stat().st_gid, mode(path)) == (gid, 0o640)


def test_without_cryptography_nothing_is_written_and_the_fix_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import fails as if not installed
    with pytest.raises(NotAvailableError, match="pip install cryptography"):
        make(tmp_path / "b", clients=["office"])
    assert not (tmp_path / "b").exists()
    store, report = make(tmp_path / "b", clients=["office"], with_tls=False)
    assert report.outcome("password: client-office") == "created"
    assert not store.ca_crt.exists()


def test_a_new_ca_gets_a_new_server_certificate(tmp_path: Path) -> None:
    store, _ = make(tmp_path / "b")
    old_key = store.server_key.read_bytes()
    store.ca_crt.unlink()
    store.ca_key.unlink()
    _, report = make(tmp_path / "b")
    assert report.outcome(str(store.ca_crt)) == "created"
    assert tls.signed_by(store.server_crt.read_bytes(), store.ca_crt.read_bytes())
    assert store.server_key.read_bytes() != old_key
    assert any("CA is new" in w.detail for w in report.warnings)


def test_bad_host_name_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="neither"):
        BrokerDirectory(tmp_path / "b").init(
            conf_template=shipped_file("powerbridge.conf"),
            acl_template=shipped_file("acl"),
            hosts=["not a host"],
        )
    assert not (tmp_path / "b").exists()
