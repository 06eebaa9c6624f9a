#!/usr/bin/env bash
# Importing a 1,000,000-row CSV into Hone's database (one streaming pass, one transaction).
# Target: under 10 s on the 2-core development machine. A benchmark, run by hand.
# Usage: [ROWS=1000000] bench/import_1m.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-1000000}
out=bench/out/import
mkdir -p "$out"
csv="$out/rows-$rows.csv"
if [ ! -f "$csv" ]; then
  python3 - "$csv" "$rows" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
words = "the a film movie story plot acting great terrible quiet charming dull brilliant long short funny sad".split()
rng = random.Random(7)
with open(path, "w", encoding="utf-8") as f:
    f.write("id,text,label\n")
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(6, 16)))
        if i % 50 == 0:
            text = '"' + text + ', with a comma and ""quotes""' + '"'
        f.write(f"{i},{text},{rng.randint(0, 1)}\n")
PY
fi
cargo build --release --quiet
db="$out/import.db"
rm -f "$db" "$db-wal" "$db-shm"
echo "importing $(du -h "$csv" | cut -f1) ($rows rows)" >&2
start=$(date +%s%N)
target/release/hone --db "$db" data import "$csv" --name big --text-column text --label-column label --json > "$out/summary.json"
end=$(date +%s%N)
python3 -c "import json,sys; s=json.load(open('$out/summary.json')); t=int(sys.argv[1])/1e9; print(f\"imported {s['imported']} rows in {t:.2f} s ({s['imported']/t:,.0f} rows/s); database {sys.argv[2]}\")" "$((end - start))" "$(du -h "$db" | cut -f1)"
