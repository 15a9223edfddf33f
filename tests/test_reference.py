import pytest

from transship.errors import ReferenceError_
from transship.reference import (
    ImageReference,
    apply_rename,
    parse_image_list,
    rewrite_repository,
)


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "", "nginx", None, None),
        ("docker.io/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("docker://127.0.0.1:5000/team/app:1.0", "127.0.0.1:5000", "team/app", "1.0", None),
        ("localhost/a/b/c:v_1.2-rc", "localhost", "a/b/c", "v_1.2-rc", None),
        ("reg.example.com/app@sha256:" + "a" * 64, "reg.example.com", "app", None, "sha256:" + "a" * 64),
        ("reg.example.com/app:1@sha256:" + "b" * 64, "reg.example.com", "app", "1", "sha256:" + "b" * 64),
    ],
)
def test_parse_valid(text, registry, repository, tag, digest):
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "UPPER", "host:5000/Team/app", "app:bad tag", "app@sha256:short", "a//b", "app:" + "x" * 200, "-app"],
)
def test_parse_invalid(text):
    with pytest.raises(ReferenceError_):
        ImageReference.parse(text)


def test_reference_prefers_digest_over_tag():
    ref = ImageReference.parse("h.io/a:1@sha256:" + "c" * 64)
    assert ref.reference == "sha256:" + "c" * 64
    assert ImageReference.parse("h.io/a").tagged_or_latest.reference == "latest"


def test_rewrite_repository_keeps_image_name():
    assert rewrite_repository("src/xxxx/image", "dst/yyyy") == "dst/yyyy/image"
    assert rewrite_repository("image", "ns") == "ns/image"
    assert rewrite_repository("a/b", None) == "a/b"


def test_image_list_with_renames_comments_and_blanks():
    text = "# release 1\n\nteam/app:1\n  team/db:2 -> other/db:3  \nteam/x:1 # trailing comment\n"
    lines = parse_image_list(text)
    assert [(l.source, l.target, l.line_number) for l in lines] == [
        ("team/app:1", None, 3),
        ("team/db:2", "other/db:3", 4),
        ("team/x:1", None, 5),
    ]


def test_apply_rename_forms():
    src = ImageReference.parse("h.io/team/app:1.0")
    assert apply_rename(src, None) == ("team/app", "1.0")
    assert apply_rename(src, "app2") == ("app2", "1.0")
    assert apply_rename(src, "ns/app2:2.0") == ("ns/app2", "2.0")
