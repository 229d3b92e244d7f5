"""Comparing map versions: the anomaly gate and the readable diff (pure functions)."""

from __future__ import annotations

from tools.dedupe.model import DomainMap, GateReport, MapDiff, PatternChange


def _label(params: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(params) + "]"


def anomaly_gate(active: DomainMap | None, candidate: DomainMap, max_share: float) -> GateReport:
    """Reject a map in which too many known patterns stop keeping a parameter they kept.

    Dropping a parameter merges pages, and a wrong merge loses content silently; a sudden wave of
    such flips more likely means the renders broke (blocked crawler, error pages) than the site.
    """
    if active is None:
        return GateReport(passed=True, compared_patterns=0, flipped_patterns=0, flipped_share=0.0, max_share=max_share)
    old = {rule.key: rule for rule in active.patterns}
    compared = flipped = 0
    flips: list[str] = []
    for rule in candidate.patterns:
        before = old.get(rule.key)
        if before is None:
            continue
        compared += 1
        lost = sorted(set(before.important) - set(rule.important))
        if lost:
            flipped += 1
            flips.extend(f"{_label(rule.params)}: {name} important → neutral" for name in lost)
    share = flipped / compared if compared else 0.0
    return GateReport(
        passed=share <= max_share,
        compared_patterns=compared,
        flipped_patterns=flipped,
        flipped_share=round(share, 4),
        max_share=max_share,
        flips=flips,
    )


def diff_maps(old: DomainMap, new: DomainMap) -> MapDiff:
    before = {rule.key: rule for rule in old.patterns}
    after = {rule.key: rule for rule in new.patterns}
    changes: list[PatternChange] = []
    unchanged = 0
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a is None and b is not None:
            changes.append(PatternChange(pattern=list(key), change="added", important=sorted(b.important)))
        elif b is None and a is not None:
            changes.append(PatternChange(pattern=list(key), change="removed", important=sorted(a.important)))
        elif a is not None and b is not None:
            became_important = sorted(set(b.important) - set(a.important))
            became_neutral = sorted(set(a.important) - set(b.important))
            added = {k: sorted(set(v) - set(a.defaults.get(k, []))) for k, v in b.defaults.items()}
            removed = {k: sorted(set(v) - set(b.defaults.get(k, []))) for k, v in a.defaults.items()}
            added = {k: v for k, v in added.items() if v}
            removed = {k: v for k, v in removed.items() if v}
            if became_important or became_neutral or added or removed:
                changes.append(
                    PatternChange(
                        pattern=list(key),
                        change="changed",
                        became_important=became_important,
                        became_neutral=became_neutral,
                        defaults_added=added,
                        defaults_removed=removed,
                    )
                )
            else:
                unchanged += 1
    lines = [f"{new.domain}: v{old.version} → v{new.version}  ({len(changes)} changed, {unchanged} unchanged patterns)"]
    for change in changes:
        label = _label(change.pattern)
        if change.change == "added":
            lines.append(f"+ {label} keeps {_label(change.important)}")
        elif change.change == "removed":
            lines.append(f"- {label} (kept {_label(change.important)})")
        else:
            parts = [f"{n} neutral → important" for n in change.became_important]
            parts += [f"{n} important → neutral" for n in change.became_neutral]
            parts += [f"{n}: default {', '.join(map(repr, v))} added" for n, v in change.defaults_added.items()]
            parts += [f"{n}: default {', '.join(map(repr, v))} removed" for n, v in change.defaults_removed.items()]
            lines.append(f"~ {label}: " + "; ".join(parts))
    return MapDiff(
        domain=new.domain,
        from_version=old.version,
        to_version=new.version,
        changes=changes,
        unchanged=unchanged,
        text="\n".join(lines),
    )
