"""SZ005: RUN steps in a row that could be one.

Every RUN adds a layer. Files that one RUN creates and the next deletes stay in the
first layer, and each layer adds its own tar headers, metadata and pull round trip.
"""

from __future__ import annotations

from transship.i18n import t
from transship.slim.lint.rules.base import Hit, LintContext, Severity, rule
from transship.slim.lint.stages import Step


def _same_options(first: Step, second: Step) -> bool:
    # Steps with different mounts, network or security modes cannot simply be joined.
    return first.instruction.flags == second.instruction.flags


@rule("SZ005", "consecutive-run", Severity.INFO)
def consecutive_run(context: LintContext) -> list[Hit]:
    hits: list[Hit] = []
    for stage in context.model.shipped:
        group: list[Step] = []
        for step in [*stage.steps, None]:
            if (
                step is not None
                and step.keyword == "RUN"
                and (not group or _same_options(group[-1], step))
            ):
                group.append(step)
                continue
            if len(group) >= 2:
                lines = ", ".join(str(s.line) for s in group)
                hits.append(
                    Hit(
                        group[0].line,
                        group[-1].instruction.end_line,
                        t("lint.SZ005.message", count=len(group), lines=lines),
                        t("lint.SZ005.fix"),
                    )
                )
            group = [step] if step is not None and step.keyword == "RUN" else []
    return hits
