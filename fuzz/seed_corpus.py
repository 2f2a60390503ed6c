#!/usr/bin/env python3
"""Seeds fuzz/corpus/pipeline/ from the conformance corpus (the corpus folder is not committed).

usage: python3 fuzz/seed_corpus.py        (from the crate root or from fuzz/)

Writes one file per event of every tests/conformance/send case and the mapping cases' event
(compact JSON, one line), one NDJSON file per send case holding all its events, and, when
../shared/bench/make-events.py is beside the crate, a few of its events. (fuzz/pipeline.dict,
committed, is libFuzzer's dictionary of the keys and values the mappings read.) Each NDJSON
file also comes in a copy whose first byte (0x87) sets a 512-byte line limit.
"""
import json
import os
import pathlib
import subprocess
import sys

fuzz = pathlib.Path(__file__).resolve().parent
root = fuzz.parent
conformance = root / "tests" / "conformance"
out = fuzz / "corpus" / "pipeline"
out.mkdir(parents=True, exist_ok=True)


def write(name, text):
    (out / name).write_text(text, encoding="utf-8")


count = 0
for case_file in sorted((conformance / "send").glob("*.json")):
    case = json.loads(case_file.read_text(encoding="utf-8"))
    lines = []
    for i, event in enumerate(case["events"]):
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        write(f"{case_file.stem}-{i}.json", line + "\n")
        lines.append(line)
        count += 1
    write(f"{case_file.stem}.ndjson", "\n".join(lines) + "\n")
    # The same lines under a 512-byte line limit (a first byte with the high bit set).
    (out / f"{case_file.stem}-limit512.ndjson").write_bytes(
        bytes([0x87]) + ("\n".join(lines) + "\n").encode("utf-8")
    )

mapping = json.loads((conformance / "mapping" / "cases.json").read_text(encoding="utf-8"))
write("mapping-event.json", json.dumps(mapping["event"], ensure_ascii=False) + "\n")
count += 1

make_events = root.parent / "shared" / "bench" / "make-events.py"
if make_events.exists():
    events = subprocess.run(
        [sys.executable, str(make_events), "40"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for i, line in enumerate(events):
        write(f"make-events-{i}.json", line + "\n")
        count += 1

print(f"{count} events in {os.path.relpath(out, root)} ({len(list(out.iterdir()))} files)")
