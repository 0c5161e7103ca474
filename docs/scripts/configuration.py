"""Write the configuration table of docs/reference/configuration.md from the settings' rows.

    uv run python docs/scripts/configuration.py           # rewrite the generated block
    uv run python docs/scripts/configuration.py --check   # fail if it is out of date

The rows are the BFFs' upstream URL variables (each BFF's ``SERVICE_URL_VARIABLES``), then the
gateway's own settings (``bff_core._settings``): each declared once, with its name, what it
accepts, its default and its meaning. The table sits between the page's markers; the rest of
the page is written by hand.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent
PAGE = DOCS / "reference" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED: configuration -->"
END = "<!-- END GENERATED: configuration -->"
COMMAND = "uv run python docs/scripts/configuration.py"
#: The BFFs whose upstream URL variables the table lists (their ``app`` modules).
SERVICES = ("web_bff", "mobile_bff")

# The working tree's packages first, so the table is the one of the code checked out.
for src in (
    REPO / "packages" / "core" / "src",
    REPO / "packages" / "upstreams" / "src",
    REPO / "services" / "web-bff" / "src",
    REPO / "services" / "mobile-bff" / "src",
):
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))

from bff_core import Setting  # noqa: E402
from bff_core._settings import gateway_settings, markdown_table  # noqa: E402


def _documented(row: Setting[Any]) -> tuple[str, str, str, str]:
    return (row.name, row.meaning, row.expects, row.documented_default)


def service_rows(services: Iterable[str] = SERVICES) -> Iterator[Setting[Any]]:
    """The services' URL variables, each once: two BFFs calling one upstream share its row,
    and must say the same of it."""
    seen: dict[str, Setting[Any]] = {}
    for service in services:
        module = importlib.import_module(f"{service}.app")
        for declared in module.SERVICE_URL_VARIABLES.values():
            if not isinstance(declared, Setting):
                raise TypeError(f"{service}: {declared!r} is not declared with Setting.url")
            known = seen.get(declared.name)
            if known is None:
                seen[declared.name] = declared
                yield declared
            elif _documented(known) != _documented(declared):
                raise ValueError(
                    f"{declared.name} is declared differently by two services: "
                    f"{_documented(known)} and {_documented(declared)}"
                )


def rows() -> list[Setting[Any]]:
    """Every row of the table, in its order."""
    return [*service_rows(), *gateway_settings()]


def block() -> str:
    """The generated block, markers included."""
    note = f"<!-- Written by `{COMMAND}`: edit the settings, not this table. -->"
    return f"{BEGIN}\n{note}\n\n{markdown_table(rows())}\n{END}"


def with_block(page: str, generated: str) -> str:
    """``page`` with its generated block replaced by ``generated``."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN} ... {END} block")
    return page[:start] + generated + page[end + len(END) :]


def stale(page: Path = PAGE) -> str | None:
    """Why ``page``'s table is not the settings' (a diff and the command that fixes it), or
    ``None`` when it is."""
    shown = page.relative_to(REPO) if page.is_relative_to(REPO) else page
    current = page.read_text(encoding="utf-8")
    wanted = with_block(current, block())
    if current == wanted:
        return None
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        wanted.splitlines(keepends=True),
        fromfile=f"{shown} (committed)",
        tofile="the settings' table",
    )
    return (
        "".join(list(diff)[:200]) + f"\n{shown}'s configuration table is not the settings': run "
        f"`{COMMAND}` to write it"
    )


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff if out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        problem = stale()
        if problem is None:
            return 0
        print(problem, file=sys.stderr)
        return 1
    PAGE.write_text(with_block(PAGE.read_text(encoding="utf-8"), block()), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
