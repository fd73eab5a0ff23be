"""Copy the small length and arrival tables ebatch needs from ../shared/data into the package.

Run from the repository root: ``python scripts/prepare_data.py [SHARED_DATA_DIR]``. The output files in
``src/ebatch/data/`` are committed so that ebatch runs offline; this script documents how they were made.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "ebatch" / "data"

# (output name, source file, column kept, renamed to)
TABLES = [
    ("librispeech-test-clean.csv", "librispeech_test_clean_durations.csv", "duration_s", "duration_s"),
    ("librispeech-dev-clean.csv", "librispeech_dev_clean_durations.csv", "duration_s", "duration_s"),
    ("librispeech-train-clean-100.csv", "librispeech_train_clean_100_durations.csv", "duration_s", "duration_s"),
    ("wmt21-en-de.csv", "wmt21_newstest2021_en_de_lengths.csv", "src_words", "words"),
    ("wmt22-en-de.csv", "wmt22_generaltest2022_en_de_lengths.csv", "src_words", "words"),
    ("iwslt15-en-vi.csv", "iwslt15_en_vi_tst2013_lengths.csv", "src_words", "words"),
    ("azure-conv.csv", "azure_llm_conv_trace.csv", "arrival_s", "arrival_s"),
    ("azure-code.csv", "azure_llm_code_trace.csv", "arrival_s", "arrival_s"),
    ("mooncake.csv", "mooncake_conversation_trace.csv", "arrival_s", "arrival_s"),
]


def main(src_dir: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for out_name, src_name, column, renamed in TABLES:
        with open(src_dir / src_name, newline="") as f:
            values = [row[column] for row in csv.DictReader(f)]
        (OUT / out_name).write_text(renamed + "\n" + "\n".join(values) + "\n")
        print(f"{out_name}: {len(values)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
