import pytest

from transship.config import load_config, parse_config
from transship.errors import ConfigError


def test_own_format_and_lookup(monkeypatch):
    monkeypatch.setenv("SITE_PW", "s3cret")
    cfg = parse_config(
        """
registries:
  company: {url: https://reg.example.com, user: deploy, password: pw}
  site: {url: "http://10.0.0.5:5000", user: ops, password_env: SITE_PW, repository: site/apps}
maxconn: 7
retries: 1
"""
    )
    assert cfg.maxconn == 7 and cfg.retries == 1
    site = cfg.registry("site")
    endpoint = site.endpoint()
    assert endpoint.insecure and endpoint.host == "10.0.0.5:5000"
    assert endpoint.credentials.password == "s3cret"
    assert "s3cret" not in repr(endpoint) and "s3cret" not in repr(site)
    assert cfg.registry("reg.example.com") is cfg.registries["company"]
    assert cfg.registry("other.example.com:5000").host == "other.example.com:5000"


def test_image_transmit_cfg_yaml_is_read():
    cfg = parse_config(
        """
source:
- registry: "http://10.45.80.1"
  user:
  password:
  name: nj
target:
  registry: "http://10.45.46.109"
  user: admin
  password: pw
  repository: yyyy
maxconn: 3
retries: 2
skiptlsverify: true
cache: {pathname: c, keepdays: 3, keepsize: 5}
"""
    )
    assert cfg.registry("nj").host == "10.45.80.1"
    target = cfg.registry("10.45.46.109-yyyy")
    assert target.repository == "yyyy" and target.skip_verify
    assert cfg.maxconn == 3 and cfg.retries == 2
    assert cfg.cache.keep_days == 3 and cfg.cache.path == "c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("maxconn: 0", "maxconn"),
        ("registries: {a: {url: x, colour: red}}", "registries.a.colour: unknown key"),
        ("registries: {a: {user: x}}", "registries.a.url"),
        ("maxconn: [1", "not valid YAML"),
        ("- a\n- b", "must be a mapping"),
        ("source: [{user: x}]", "source[0].registry: missing"),
        ("codec: squashfs", "codec"),
        ("dedup_effort: extreme", "dedup_effort"),
    ],
)
def test_bad_config_names_file_and_key(text, expected):
    with pytest.raises(ConfigError) as e:
        parse_config(text, "cfg.yaml")
    message = str(e.value)
    assert message.startswith("cfg.yaml")
    assert expected in message
    assert "\n" not in message


def test_save_codec_defaults_come_from_the_config():
    assert (parse_config("maxconn: 2", "t.yaml").codec, "raw") == ("raw", "raw")
    cfg = parse_config("codec: dedup\ndedup_effort: max", "t.yaml")
    assert (cfg.codec, cfg.dedup_effort) == ("dedup", "max")


def test_unknown_registry_name_lists_known(tmp_path):
    path = tmp_path / "transship.yaml"
    path.write_text("registries: {a: {url: h.io}}\n")
    cfg = load_config(str(path))
    with pytest.raises(ConfigError, match=r"unknown registry name 'nope'.*: a\)"):
        cfg.registry("nope")


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "none.yaml"))


def test_password_env_missing(monkeypatch):
    monkeypatch.delenv("NOPE_PW", raising=False)
    cfg = parse_config("registries: {a: {url: h.io, user: u, password_env: NOPE_PW}}")
    with pytest.raises(ConfigError, match="NOPE_PW is not set"):
        cfg.registry("a").endpoint()
