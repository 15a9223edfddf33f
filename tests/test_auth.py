from transship.registry.auth import parse_www_authenticate, scope_for
from transship.registry.credentials import Credentials, from_docker_config


def test_parse_bearer_challenge():
    c = parse_www_authenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_www_authenticate('Basic realm="x"').scheme == "basic"
    assert parse_www_authenticate("") is None


def test_scope_for_paths():
    assert scope_for("/v2/a/b/manifests/1", "GET") == "repository:a/b:pull"
    assert scope_for("/v2/a/blobs/uploads/", "POST") == "repository:a:pull,push"
    assert scope_for("/v2/_catalog", "GET") == "registry:catalog:*"
    assert scope_for("/v2/", "GET") is None


def test_docker_config_auths_and_helpers(tmp_path, monkeypatch):
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"helper-pw-$host\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    (tmp_path / "config.json").write_text(
        '{"auths": {"a.example.com": {"auth": "dXNlcjpwYXNz"}}, "credHelpers": {"b.example.com": "fake"}}'
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert from_docker_config("a.example.com") == Credentials("user", "pass")
    creds = from_docker_config("b.example.com")
    assert creds.username == "helper-user" and creds.password == "helper-pw-b.example.com"
    assert from_docker_config("c.example.com") is None
    assert "s3cr3t" not in repr(Credentials("u", "s3cr3t"))
