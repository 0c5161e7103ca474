"""Write web-bff's OpenAPI document to apps/web-spa/openapi.json (the input of `npm run gen:api`).

    .venv/bin/python apps/web-spa/scripts/dump_openapi.py           # rewrite openapi.json
    .venv/bin/python apps/web-spa/scripts/dump_openapi.py --check   # fail if it is out of date

The document is asked of the application itself through Litestar's test client, so no upstream
and no server are needed. It is written pretty-printed with sorted keys, so that a change of the
BFF's views reads as a small diff. After a rewrite, run `npm run gen:api` in apps/web-spa.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

SPA = Path(__file__).resolve().parent.parent
REPO = SPA.parent.parent
DEFAULT_OUT = SPA / "openapi.json"

# The working tree's packages first, so the document is the one of the code checked out even
# with an interpreter where they are not installed (their dependencies still have to be).
for src in (
    REPO / "services" / "web-bff" / "src",
    REPO / "packages" / "upstreams" / "src",
    REPO / "packages" / "core" / "src",
):
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))

from litestar.testing import TestClient  # noqa: E402
from web_bff import create_app  # noqa: E402


def openapi_document() -> str:
    """web-bff's OpenAPI document as it serves it at /schema/openapi.json, normalised."""
    with TestClient(create_app()) as client:
        answer = client.get("/schema/openapi.json")
        answer.raise_for_status()
        document = answer.json()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write it")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if the file differs from web-bff's document",
    )
    args = parser.parse_args(argv)
    document = openapi_document()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current == document:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            document.splitlines(keepends=True),
            fromfile=f"{args.out} (committed)",
            tofile="web-bff's /schema/openapi.json",
        )
        sys.stdout.writelines(list(diff)[:200])
        print(
            f"\n{args.out} is out of date with web-bff's views: run "
            "`.venv/bin/python apps/web-spa/scripts/dump_openapi.py` and `npm run gen:api` "
            "in apps/web-spa, then `npm run typecheck` shows what the change breaks in the SPA",
            file=sys.stderr,
        )
        return 1
    args.out.write_text(document, encoding="utf-8")
    print(f"wrote {args.out} ({len(document)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
