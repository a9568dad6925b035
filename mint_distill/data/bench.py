"""Memory and speed of user selection on a synthetic review file (Yelp Open layout).

    python -m mint_distill.data.bench --lines 1000000

Writes business.json + review.json into a temporary folder, runs the same code as the data
stage (catalog, three streaming passes, sentence choice) and prints the file size, the time
and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

_VOCABULARY = (
    "the food was great and service friendly but parking hard to find so we walked from the "
    "station past old brick houses ordering spicy noodles crispy dumplings cold beer sweet "
    "dessert table view music loud quiet patio cozy staff waited long line worth it again"
)
_WORDS = _VOCABULARY.split()


def write_synthetic_source(
    folder: Path, lines: int, users: int, items: int, words: int, seed: int = 0
) -> Path:
    """A Yelp Open Dataset folder with `lines` reviews of `words` words each; returns the folder."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "business.json", "w", encoding="utf-8") as handle:
        handle.writelines(
            json.dumps(
                {
                    "business_id": f"b{item}",
                    "name": f"Place {item}",
                    "city": "Springfield",
                    "state": "IL",
                    "categories": "Restaurants, Pizza" if item % 2 else "Nightlife, Bars",
                }
            )
            + "\n"
            for item in range(items)
        )
    with open(folder / "review.json", "w", encoding="utf-8") as handle:
        for line in range(lines):
            sentences = []
            remaining = words
            while remaining > 0:
                length = min(remaining, rng.randint(6, 18))
                sentences.append(
                    " ".join(rng.choice(_WORDS) for _ in range(length)).capitalize() + "."
                )
                remaining -= length
            handle.write(
                json.dumps(
                    {
                        "review_id": f"r{line}",
                        "user_id": f"u{rng.randrange(users)}",
                        "business_id": f"b{rng.randrange(items)}",
                        "stars": float(rng.randint(1, 5)),
                        "text": " ".join(sentences),
                        "date": "2020-01-01 00:00:00",
                    }
                )
                + "\n"
            )
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--words", type=int, default=60, help="words per review")
    parser.add_argument("--folder", type=Path, help="reuse or keep the synthetic files here")
    args = parser.parse_args(argv)

    from ..console import setup_logging
    from ..recipe.sections.data import DataSection
    from .build import prepare_training_data

    setup_logging(quiet=True)
    with tempfile.TemporaryDirectory(prefix="mint-data-bench-") as scratch:
        folder = args.folder or Path(scratch) / "yelp"
        if not (folder / "review.json").is_file():
            write_synthetic_source(folder, args.lines, args.users, args.items, args.words)
        size = (folder / "review.json").stat().st_size
        before = _peak_rss_mb()
        section = DataSection(
            data_dir=str(folder.parent),
            source={"format": "yelp_open", "path": folder.name},
            selection={"min_liked": 5, "max_liked": 30},
        )
        clock = time.perf_counter()
        data = prepare_training_data(section)
        seconds = time.perf_counter() - clock
        funnel = data.stats["selection"]["users"]
        print(
            json.dumps(
                {
                    "review_lines": args.lines,
                    "review_file_mb": round(size / 2**20, 1),
                    "users": data.stats["source"]["users"],
                    "kept_users": funnel["kept"],
                    "seconds": round(seconds, 1),
                    "reviews_per_second": round(args.lines / seconds, 1),
                    "peak_rss_mb_before_selection": round(before, 1),
                    "peak_rss_mb": round(_peak_rss_mb(), 1),
                },
                indent=2,
            )
        )


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


if __name__ == "__main__":
    main()
