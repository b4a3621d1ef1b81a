"""Loading mappings: the shipped set is valid; every error names file, key path and reason."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings

from connector.errors import ConfigError
from connector.mappings import FILES, format_loc, load_mappings
from tests.strategies import json_values, one_change

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", target)
    return target


def edit(directory: Path, name: str, change: Callable[[str], str]) -> None:
    path = directory / name
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_mappings(directory)
    return [str(issue) for issue in caught.value.issues]


def test_shipped_mappings_load() -> None:
    mappings = load_mappings(ROOT / "mappings")
    policy = mappings.policy
    assert set(policy.levels.levels) == {
        "partner-operational",
        "partner-standard",
        "commercial-operational",
        "commercial-standard",
        "vip",
        "noncommercial",
        "consulting",
    }
    assert [policy.levels.levels[k].hours for k in ("vip", "noncommercial", "consulting")] == [
        2,
        24,
        40,
    ]
    assert set(policy.calendars) >= {"moscow"}
    assert all(name in FILES for name in (p.name for p in (ROOT / "mappings").glob("*.yaml")))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # a wrong interval names calendar, weekday and index
        (
            "calendars.yaml",
            'mon: ["09:00-13:00", "14:00-18:00"]',
            'mon: ["09:00-13:00", "14:00-25:00"]',
            "calendars.yaml: calendars.moscow.week.mon[1]: ",
        ),
        # an unknown time zone
        (
            "calendars.yaml",
            "timezone: Europe/Moscow",
            "timezone: Europe/Moskva",
            "calendars.yaml: calendars.moscow.timezone: unknown IANA time zone 'Europe/Moskva'",
        ),
        # negative hours
        (
            "levels.yaml",
            "hours: 3\n",
            "hours: -3\n",
            "levels.yaml: levels.partner-operational.hours: Input should be greater than 0",
        ),
        # hours that are not a finite, plausible number (a due time past the year 9999 crashed)
        (
            "levels.yaml",
            "hours: 3\n",
            "hours: .inf\n",
            "levels.yaml: levels.partner-operational.hours: Input should be a finite number",
        ),
        (
            "levels.yaml",
            "hours: 3\n",
            "hours: 4000\n",
            "levels.yaml: levels.partner-operational.hours: Input should be less than or equal "
            "to 2000",
        ),
        # a matrix entry naming no level
        (
            "levels.yaml",
            "emergency: vip",
            "emergency: vipp",
            "levels.yaml: matrix.enterprise.emergency: unknown level 'vipp'",
        ),
        # a tier rule naming a tier the matrix lacks
        (
            "tiers.yaml",
            "tier: partner\n",
            "tier: partners\n",
            "tiers.yaml: rules[0].tier: unknown tier 'partners'",
        ),
        # an unknown key is refused, not ignored
        (
            "tiers.yaml",
            "default_tier: noncommercial",
            "default_tier: noncommercial\ndefault_teir: x",
            "tiers.yaml: default_teir: Extra inputs are not permitted",
        ),
        # an override that sets a level that does not exist
        (
            "overrides.yaml",
            "set: consulting, note",
            "set: consultng, note",
            "overrides.yaml: level[0].set: 'consultng' is not one of",
        ),
        # the default calendar must exist
        (
            "levels.yaml",
            "calendar: moscow ",
            "calendar: kazan ",
            "levels.yaml: calendar: unknown calendar 'kazan'",
        ),
        # a year typo in the holiday data or a date is named, not a traceback
        (
            "calendars.yaml",
            "holidays: {country: RU}",
            "holidays: {country: RU, known_until: 20270}",
            "calendars.yaml: calendars.moscow.holidays.known_until: year 20270 is outside",
        ),
        (
            "calendars.yaml",
            '"2025-03-07":',
            '"9999-03-07":',
            "calendars.yaml: calendars.moscow.dates: 9999-03-07: year 9999 is outside",
        ),
        (
            "calendars.yaml",
            '"2025-03-07":',
            '"0025-03-07":',
            "calendars.yaml: calendars.moscow.dates: 0025-03-07: year 25 is outside",
        ),
        # whatever else makes a calendar fail to compile is an issue too (here python-holidays
        # raised NotImplementedError for an unknown region)
        (
            "calendars.yaml",
            "holidays: {country: RU}",
            "holidays: {country: RU, subdiv: XX}",
            "calendars.yaml: calendars.moscow: cannot compile this calendar: ",
        ),
        # YAML syntax errors give line and column
        ("tiers.yaml", "rules:", "rules: [", "tiers.yaml: line "),
        # duplicate keys are refused instead of silently merged
        (
            "levels.yaml",
            "consulting_level: consulting",
            "consulting_level: consulting\nconsulting_level: vip",
            "duplicate key 'consulting_level'",
        ),
    ],
)
def test_config_errors_name_file_path_and_reason(
    mappings_dir: Path, file: str, old: str, new: str, expected: str
) -> None:
    edit(mappings_dir, file, lambda text: text.replace(old, new, 1))
    assert any(expected in issue for issue in issues_of(mappings_dir)), issues_of(mappings_dir)


def test_every_error_is_reported_at_once(mappings_dir: Path) -> None:
    edit(mappings_dir, "levels.yaml", lambda t: t.replace("hours: 3\n", "hours: zero\n", 1))
    edit(mappings_dir, "tiers.yaml", lambda t: t.replace("tier: partner\n", "tier: nobody\n", 1))
    edit(mappings_dir, "overrides.yaml", lambda t: t.replace('tag_prefix: "sla:"', "tag_prefix: 7"))
    issues = issues_of(mappings_dir)
    assert {issue.split(":")[0] for issue in issues} == {"levels.yaml", "overrides.yaml"}
    # the tier cross-check needs a valid levels.yaml, so it is not reported yet


def test_missing_file_and_directory(mappings_dir: Path, tmp_path: Path) -> None:
    (mappings_dir / "overrides.yaml").unlink()
    assert any(i.startswith("overrides.yaml: ") for i in issues_of(mappings_dir))
    assert "mappings directory not found" in issues_of(tmp_path / "nowhere")[0]


def test_top_level_must_be_a_mapping(mappings_dir: Path) -> None:
    (mappings_dir / "tiers.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    assert "tiers.yaml: expected a mapping at the top" in issues_of(mappings_dir)


def test_a_file_saved_in_another_encoding(mappings_dir: Path) -> None:
    """Russian text saved as Windows-1251 (Notepad's "ANSI") was a UnicodeDecodeError
    traceback; now the file, the line and what to do."""
    tiers = mappings_dir / "tiers.yaml"
    text = tiers.read_text(encoding="utf-8")
    tiers.write_bytes(text.encode("cp1251"))
    first = next(at for at, char in enumerate(text) if not char.isascii())
    line = text[:first].count("\n") + 1
    (issue,) = issues_of(mappings_dir)
    assert issue.startswith(f"tiers.yaml: line {line}: not UTF-8 (byte 0x")
    assert issue.endswith("save the file as UTF-8")


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("calendars", "moscow", "week", "mon", 1), "calendars.moscow.week.mon[1]"),
        (("rules", 0, "field", "pattern"), "rules[0].field.pattern"),
        ((), ""),
    ],
)
def test_format_loc(loc: tuple[str | int, ...], text: str) -> None:
    assert format_loc(loc) == text


SHIPPED = {
    name: yaml.safe_load((ROOT / "mappings" / name).read_text(encoding="utf-8")) for name in FILES
}


@pytest.mark.parametrize("name", FILES)
def test_any_one_change_loads_or_names_the_file(name: str, tmp_path: Path) -> None:
    """A mapping file with one value anywhere replaced by arbitrary YAML data, or removed,
    loads or fails with ConfigError issues that name a mapping file (the changed one, or one
    that refers to what it removed) and a reason; never another exception (a calendar interval
    given as a list with a mapping in it was a TypeError, a traceback from check-config)."""

    directory = tmp_path / "m"
    shutil.copytree(ROOT / "mappings", directory)
    shipped = (directory / name).read_text(encoding="utf-8")

    @settings(max_examples=25, deadline=None)  # a load compiles the calendars: ~0.15 s
    @given(one_change(SHIPPED[name]) | json_values)
    def run(document: object) -> None:
        changed = yaml.safe_dump(document, allow_unicode=True)
        (directory / name).write_text(changed, encoding="utf-8")
        try:
            load_mappings(directory)
        except ConfigError as exc:
            found = exc.issues
        else:
            return
        finally:
            (directory / name).write_text(shipped, encoding="utf-8")
        assert found
        assert all(issue.file in FILES and issue.message for issue in found), found

    run()
