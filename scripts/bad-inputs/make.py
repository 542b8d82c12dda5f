#!/usr/bin/env python3
"""The bad-input generator: hostile capture files, one per way a stream or an
operator can go wrong, written to OUT_DIR. scripts/bad-inputs.sh replays each
with `pulse replay` and checks what a user must get: no panic, no hang, memory
bounded, a clear exit.

usage: make.py SEED_CAPTURE OUT_DIR
"""
import json
import os
import random
import sys

seed_path, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
lines = [l for l in open(seed_path, "rb").read().split(b"\n") if l.strip()]
records = [json.loads(l) for l in lines]
rng = random.Random(13)


def write(name, body):
    with open(os.path.join(out, name), "wb") as f:
        f.write(body)


def jl(recs):
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in recs)


def each(mutate):
    out_recs = []
    for r in records:
        r = json.loads(json.dumps(r))
        mutate(r)
        out_recs.append(r)
    return jl(out_recs)


def set_acdt(value):
    return lambda r: r["dynamodb"].__setitem__("ApproximateCreationDateTime", value)


def image_as_list(r):
    img = r["dynamodb"].get("NewImage")
    if isinstance(img, dict):
        r["dynamodb"]["NewImage"] = list(img.values())


def amount(value):
    def f(r):
        img = r["dynamodb"].get("NewImage") or {}
        if "amount" in img:
            img["amount"] = {"N": value}
    return f


write("empty.jsonl", b"")
write("blank-lines.jsonl", b"\n \n\t\r\n" * 1000)
write("not-json.jsonl", b"".join(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).replace(b"\n", b" ") + b"\n" for _ in range(2000)))
write("truncated.jsonl", b"".join(l[: rng.randrange(len(l))] + b"\n" for l in lines))
write("bom-and-crlf.jsonl", b"".join(b"\xef\xbb\xbf" + l + b"\r\n" for l in lines))
write("non-utf8.jsonl", b"".join(l.replace(b'"S":"', b'"S":"\xff\xfe', 1) + b"\n" for l in lines))
write("nul-bytes.jsonl", b"".join(l + b"\x00\n" for l in lines))
write("acdt-in-milliseconds.jsonl", each(lambda r: r["dynamodb"].__setitem__("ApproximateCreationDateTime", r["dynamodb"].get("ApproximateCreationDateTime", 0) * 1000)))
write("acdt-2-to-the-64.jsonl", each(set_acdt(18446744073709551616)))
write("acdt-negative.jsonl", each(set_acdt(-1)))
write("acdt-string.jsonl", each(set_acdt("yesterday")))
write("images-as-lists.jsonl", each(image_as_list))
write("amounts-1.7e308.jsonl", each(amount("1.7e308")))
write("amounts-nan.jsonl", each(amount("NaN")))
write("amounts-huge-digits.jsonl", each(amount("9" * 5000)))
write("deep-nesting.jsonl", (b"[" * 100000 + b"]" * 100000 + b"\n") * 3)
write("one-2mib-line.jsonl", b'{"eventName":"INSERT","x":"' + b"a" * (2 << 20) + b'"}\n' + b"\n".join(lines) + b"\n")
write("keys-only.jsonl", each(lambda r: [r["dynamodb"].pop(k, None) for k in ("NewImage", "OldImage")]))
write("wrong-event-names.jsonl", each(lambda r: r.__setitem__("eventName", rng.choice(["insert", "UPSERT", "", None, 7]))))
write("duplicated-10x.jsonl", b"".join(l + b"\n" for l in lines for _ in range(10)))
write("reversed.jsonl", b"".join(l + b"\n" for l in reversed(lines)))
write("shuffled.jsonl", b"".join(l + b"\n" for l in rng.sample(lines, len(lines))))
print(len(os.listdir(out)))
