"""Run the rules over one Dockerfile and apply config and inline ``transship-lint`` comments.

Inline control, in a comment on the line(s) just above an instruction, between its
continued lines, in its heredoc, or at the end of a RUN::

    # transship-lint disable=SZ002,consecutive-run
    RUN apt-get update && apt-get install -y curl

and for the whole file, anywhere in a comment: ``# transship-lint disable-file=SZ005``.
``all`` stands for every rule.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transship.i18n import t
from transship.slim.lint.config import DEFAULT_CONFIG_NAME, LintSettings, rule_id_for
from transship.slim.lint.parser import DockerfileError, ParsedDockerfile, parse_dockerfile
from transship.slim.lint.rules import RULES, LintContext, Severity
from transship.slim.lint.stages import build_model

_DIRECTIVE_RE = re.compile(
    r"#\s*transship-lint\s*:?\s*(disable(?:-file)?)\s*=\s*([A-Za-z0-9_\-]+(?:\s*,\s*[A-Za-z0-9_\-]+)*)",
    re.IGNORECASE,
)
ALL_RULES = "all"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    end_line: int
    rule_id: str
    rule_name: str
    severity: Severity
    message: str
    fix: str

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


@dataclass
class LintOptions:
    settings: LintSettings = field(default_factory=LintSettings)
    config_name: str = DEFAULT_CONFIG_NAME
    context_dir: Path | None = None  # None: the Dockerfile's directory
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None


def read_dockerfile(path: Path) -> str:
    """The text of a Dockerfile; raises DockerfileError when it cannot be read as text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise DockerfileError(str(path), None, t("lint.parse.unreadable", reason=reason)) from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DockerfileError(str(path), None, t("lint.parse.not_text")) from error


def lint_path(path: Path, options: LintOptions | None = None) -> list[Finding]:
    """Lint the Dockerfile at `path`; its directory is the build context unless told otherwise."""
    options = options or LintOptions()
    text = read_dockerfile(path)
    context_dir = options.context_dir or path.resolve().parent
    return lint_text(text, str(path), options, dockerfile=path, context_dir=context_dir)


def lint_text(
    text: str,
    label: str = "Dockerfile",
    options: LintOptions | None = None,
    *,
    dockerfile: Path | None = None,
    context_dir: Path | None = None,
) -> list[Finding]:
    """Lint Dockerfile text; `context_dir` None means the context is unknown (stdin)."""
    options = options or LintOptions()
    parsed = parse_dockerfile(text, label)
    model = build_model(parsed, options.build_args, options.target)
    context = LintContext(
        model=model,
        dockerfile=dockerfile,
        context_dir=context_dir if context_dir is not None else options.context_dir,
        approved_bases=list(options.settings.approved_bases),
        config_name=options.config_name,
    )
    suppressed = _Suppressions(parsed)
    findings: list[Finding] = []
    for rule_id, rule in sorted(RULES.items()):
        if rule_id in options.settings.disable or suppressed.whole_file(rule_id):
            continue
        for found in rule.check(context):
            if suppressed.at(found.line, rule_id):
                continue
            findings.append(
                Finding(
                    path=label,
                    line=found.line,
                    end_line=max(found.end_line, found.line),
                    rule_id=rule_id,
                    rule_name=rule.name,
                    severity=options.settings.severity_of(rule_id),
                    message=found.message,
                    fix=found.fix,
                )
            )
    findings.sort(key=lambda f: (f.line, f.rule_id))
    return findings


def _rule_ids(names: str) -> set[str]:
    ids: set[str] = set()
    for name in names.split(","):
        name = name.strip()
        if name.lower() == ALL_RULES:
            ids.add(ALL_RULES)
        elif (rule_id := rule_id_for(name)) is not None:
            ids.add(rule_id)
    return ids


class _Suppressions:
    """Rules switched off by comments, per instruction line and for the whole file."""

    def __init__(self, parsed: ParsedDockerfile):
        self.file_rules: set[str] = set()
        self.by_line: dict[int, set[str]] = {}
        for _, comment in parsed.comments:
            for match in _DIRECTIVE_RE.finditer(comment):
                if match.group(1).lower() == "disable-file":
                    self.file_rules |= _rule_ids(match.group(2))
        for instruction in parsed.instructions:
            texts = [comment for _, comment in instruction.comments] + [instruction.source]
            rules: set[str] = set()
            for text in texts:
                for match in _DIRECTIVE_RE.finditer(text):
                    if match.group(1).lower() == "disable":
                        rules |= _rule_ids(match.group(2))
            if rules:
                self.by_line[instruction.line] = rules

    def whole_file(self, rule_id: str) -> bool:
        return rule_id in self.file_rules or ALL_RULES in self.file_rules

    def at(self, line: int, rule_id: str) -> bool:
        rules = self.by_line.get(line, set())
        return rule_id in rules or ALL_RULES in rules
