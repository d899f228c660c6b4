#!/usr/bin/env python3
"""Generate the safetensors regression corpus (standard library only).

Writes, next to this script:
  safetensors/bad_*.safetensors    one violation each; must be rejected
  safetensors/valid_*.safetensors  edge cases that must load
  safetensors/EXPECTED.tsv         bad file <TAB> substring its error message must contain
and the fuzzer seed corpus ../fuzz/corpus/fuzz_safetensors/ (copies of the valid files).

The files are checked in; rerun this script after editing it and check in the result.
Headers are written as literal text (not json.dumps) so that a case can hold exactly the
bytes it needs: duplicate keys, NUL padding, invalid UTF-8, ...
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "safetensors")
SEED = os.path.join(HERE, "..", "fuzz", "corpus", "fuzz_safetensors")


def st(header, data=b"", hlen=None, pad=True):
    """A safetensors file: 8-byte LE header length, header (padded with spaces to a
    multiple of 8 like the reference writer, unless pad=False), data section."""
    h = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def ent(dtype, shape, b, e):
    return '{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}' % (
        dtype, "[" + ",".join(str(x) for x in shape) + "]", b, e)


W = ent("F32", [1], 0, 4)   # a good one-element entry
D4 = f32(1.0)

# (name, bytes, expected substring of the error message)
BAD = [
    # -- file and header length
    ("bad_empty", b"", "file is empty"),
    ("bad_short", b"\x02\x00\x00", "too short (3 bytes)"),
    ("bad_short_7", b"\x02\x00\x00\x00\x00\x00\x00", "too short (7 bytes)"),
    ("bad_hlen_over_limit", st("{}", hlen=100 * 1024 * 1024 + 1), "exceeds the limit"),
    ("bad_hlen_u64_max", st("{}", hlen=2**64 - 1), "header length 18446744073709551615 exceeds"),
    ("bad_hlen_past_eof", st("{}", hlen=64), "header length 64 runs past the end of the file"),
    ("bad_hlen_zero", st("{}", hlen=0), "header is not valid JSON"),
    # -- header JSON
    ("bad_json_syntax", st('{"w": {'), "header is not valid JSON"),
    ("bad_json_trailing", st("{} x"), "end of file expected"),
    ("bad_json_nul_padding", st(b"{}\0\0\0\0\0\0", pad=False), "header is not valid JSON"),
    ("bad_json_utf8", st(b'{"w\xff":' + W.encode() + b"}", D4), "unable to decode byte 0xff"),
    ("bad_json_deep", st("[" * 5000), "maximum parsing depth"),
    ("bad_json_nul_name", st('{"a\\u0000b":' + W + "}", D4), "NUL byte in object key"),
    ("bad_json_big_int", st('{"w":' + ent("F32", [99999999999999999999], 0, 4) + "}", D4),
     "too big integer"),
    ("bad_top_array", st("[]"), "header is an array, expected a JSON object"),
    ("bad_top_string", st('"w"'), "header is a string, expected a JSON object"),
    ("bad_dup_name", st('{"w":' + W + ',"w":' + W + "}", D4), "duplicate object key near '\"w\"'"),
    ("bad_dup_entry_key",
     st('{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', D4),
     "duplicate object key near '\"dtype\"'"),
    ("bad_dup_metadata", st('{"__metadata__":{},"__metadata__":{}}'),
     "duplicate object key near '\"__metadata__\"'"),
    # -- entries
    ("bad_entry_array", st('{"w":[1]}'), "tensor 'w': entry is an array"),
    ("bad_entry_null", st('{"w":null}'), "tensor 'w': entry is null"),
    ("bad_missing_dtype", st('{"w":{"shape":[1],"data_offsets":[0,4]}}', D4),
     "tensor 'w': missing 'dtype'"),
    ("bad_missing_shape", st('{"w":{"dtype":"F32","data_offsets":[0,4]}}', D4),
     "tensor 'w': missing 'shape'"),
    ("bad_missing_offsets", st('{"w":{"dtype":"F32","shape":[1]}}', D4),
     "tensor 'w': missing 'data_offsets'"),
    ("bad_unknown_key",
     st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}}', D4),
     "tensor 'w': unknown key 'offsets'"),
    ("bad_dtype_unknown", st('{"w":' + ent("F8_E4M3", [4], 0, 4) + "}", D4),
     "tensor 'w': unknown dtype 'F8_E4M3'"),
    ("bad_dtype_lowercase", st('{"w":' + ent("f32", [1], 0, 4) + "}", D4),
     "tensor 'w': unknown dtype 'f32'"),
    ("bad_dtype_not_string", st('{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}', D4),
     "tensor 'w': dtype is an integer"),
    ("bad_shape_not_array", st('{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}', D4),
     "tensor 'w': shape is an integer"),
    ("bad_shape_negative", st('{"w":' + ent("F32", [-1], 0, 4) + "}", D4),
     "tensor 'w': shape[0] = -1 is negative"),
    ("bad_shape_float", st('{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', D4),
     "tensor 'w': shape[0] is a number"),
    ("bad_shape_string", st('{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}', D4),
     "tensor 'w': shape[0] is a string"),
    ("bad_shape_rank9", st('{"w":' + ent("F32", [1] * 9, 0, 4) + "}", D4),
     "tensor 'w': shape has rank 9"),
    ("bad_shape_numel_overflow", st('{"w":' + ent("U8", [2**32, 2**32], 0, 4) + "}", D4),
     "tensor 'w': shape is too large (element count overflows)"),
    ("bad_shape_bytes_overflow", st('{"w":' + ent("F32", [2**62], 0, 4) + "}", D4),
     "tensor 'w': shape is too large (byte size overflows)"),
    ("bad_shape_overflow_then_zero", st('{"w":' + ent("F32", [2**62, 2**62, 0], 0, 0) + "}"),
     "tensor 'w': shape is too large (element count overflows)"),
    ("bad_offsets_not_array", st('{"w":{"dtype":"F32","shape":[1],"data_offsets":4}}', D4),
     "tensor 'w': data_offsets is an integer"),
    ("bad_offsets_one", st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}}', D4),
     "tensor 'w': data_offsets has 1 elements"),
    ("bad_offsets_three", st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', D4),
     "tensor 'w': data_offsets has 3 elements"),
    ("bad_offsets_negative", st('{"w":' + ent("F32", [1], -4, 0) + "}", D4),
     "tensor 'w': data_offsets[0] = -4 is negative"),
    ("bad_offsets_float", st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', D4),
     "tensor 'w': data_offsets[1] is a number"),
    ("bad_offsets_reversed", st('{"w":' + ent("F32", [1], 4, 0) + "}", D4),
     "tensor 'w': data_offsets [4, 0]: begin > end"),
    ("bad_offsets_past_end", st('{"w":' + ent("F32", [2], 0, 8) + "}", D4),
     "tensor 'w': data_offsets [0, 8] run past the end of the data section (4 bytes)"),
    ("bad_offsets_huge", st('{"w":' + ent("U8", [2**63 - 1], 0, 2**63 - 1) + "}", D4),
     "run past the end of the data section"),
    ("bad_size_mismatch", st('{"w":' + ent("F32", [2], 0, 4) + "}", D4),
     "tensor 'w': data_offsets [0, 4] hold 4 bytes but F32 [2] needs 8"),
    ("bad_size_mismatch_empty", st('{"w":' + ent("F16", [3, 0], 0, 4) + "}", D4),
     "hold 4 bytes but F16 [3, 0] needs 0"),
    # -- the data section as a whole
    ("bad_overlap", st('{"a":' + ent("F32", [2], 0, 8) + ',"b":' + ent("F32", [2], 4, 12) + "}",
                       f32(1, 2, 3)),
     "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"),
    ("bad_overlap_same", st('{"a":' + W + ',"b":' + W + "}", D4),
     "tensor 'b': data_offsets [0, 4] overlap tensor 'a' [0, 4]"),
    ("bad_overlap_empty_inside",
     st('{"a":' + ent("U8", [4], 0, 4) + ',"e":' + ent("U8", [0], 2, 2) + "}", D4),
     "tensor 'e': data_offsets [2, 2] overlap tensor 'a'"),
    ("bad_gap_start", st('{"w":' + ent("F32", [1], 4, 8) + "}", f32(0, 1)),
     "tensor 'w': data_offsets [4, 8] leave a gap of 4 unindexed bytes at the start"),
    ("bad_gap_middle", st('{"a":' + W + ',"b":' + ent("F32", [1], 8, 12) + "}", f32(1, 2, 3)),
     "tensor 'b': data_offsets [8, 12] leave a gap of 4 unindexed bytes after tensor 'a'"),
    ("bad_trailing_data", st('{"w":' + W + "}", f32(1, 2)),
     "4 trailing bytes of the data section are not covered by any tensor"),
    ("bad_trailing_all_empty", st('{"w":' + ent("F32", [0], 0, 0) + "}", D4),
     "(all tensors are empty)"),
    ("bad_no_tensors_with_data", st("{}", f32(1, 2)), "no tensors but a data section of 8 bytes"),
    # -- metadata
    ("bad_meta_not_object", st('{"__metadata__":["x"]}'), "__metadata__ is an array"),
    ("bad_meta_value_int", st('{"__metadata__":{"step":5}}'),
     "__metadata__ key 'step': value is an integer"),
    ("bad_meta_value_null", st('{"__metadata__":{"step":null}}'),
     "__metadata__ key 'step': value is null"),
    # -- hostile names: escaped and shortened in messages
    ("bad_name_escapes", st('{"evil\\u001b[2J\\nx":' + ent("Q4", [1], 0, 4) + "}", D4),
     "tensor 'evil\\x1b[2J\\x0ax': unknown dtype 'Q4'"),
    ("bad_name_bidi", st('{"a\\u202eb":' + ent("Q4", [1], 0, 4) + "}", D4),
     "tensor 'a\\u202eb': unknown dtype"),
    ("bad_name_long", st('{"' + "n" * 5000 + '":' + ent("Q4", [1], 0, 4) + "}", D4),
     "nnnn...': unknown dtype 'Q4'"),
]

# Files that must load (the unit test checks their contents).
VALID = [
    ("valid_zero_tensors", st("{}")),
    ("valid_metadata",
     st('{"__metadata__":{"format":"pt","note":"h\u00e9llo"},"w":' + ent("F32", [2], 0, 8) + "}",
        f32(1.0, -2.5))),
    ("valid_metadata_only", st('{"__metadata__":{"format":"pt"}}')),
    ("valid_empty_tensor",
     st('{"empty":' + ent("F32", [0], 0, 0) + ',"x":' + ent("U8", [2], 0, 2) +
        ',"empty2d":' + ent("F16", [3, 0], 2, 2) + "}", b"\x07\x09")),
    ("valid_dtypes",
     st('{"h":' + ent("F16", [2], 0, 4) + ',"b":' + ent("BF16", [2], 4, 8) +
        ',"i":' + ent("I64", [2], 8, 24) + ',"s":' + ent("F32", [], 24, 28) +
        ',"d":' + ent("F64", [1], 28, 36) + ',"m":' + ent("BOOL", [3], 36, 39) + "}",
        struct.pack("<HH", 0x3C00, 0xC000) + struct.pack("<HH", 0x3F80, 0x3F00) +
        struct.pack("<qq", -1, 1 << 40) + f32(3.5) + struct.pack("<d", 0.25) + b"\x01\x00\x01")),
    ("valid_unaligned",
     st('{"bytes":' + ent("U8", [3], 0, 3) + ',"f":' + ent("F32", [2], 3, 11) +
        ',"s":' + ent("I16", [1], 11, 13) + "}",
        b"\x01\x02\x03" + f32(1.5, -0.25) + struct.pack("<h", -7))),
    ("valid_unpadded_header", st('{"f":' + ent("F32", [1], 0, 4) + "}", f32(2.0), pad=False)),
    ("valid_unsorted",
     st('{"z":' + ent("F32", [1], 0, 4) + ',"a":' + ent("F32", [1], 4, 8) +
        ',"m":' + ent("F32", [1], 8, 12) + "}", f32(26.0, 1.0, 13.0))),
    ("valid_rank8", st('{"r":' + ent("F32", [1, 1, 1, 1, 1, 1, 1, 1], 0, 4) + "}", f32(8.0))),
    ("valid_whitespace",
     st('\n {\n  "w" : { "dtype" : "F32" , "shape" : [ 1 ] , "data_offsets" : [ 0 , 4 ] }\n}\n\t',
        f32(-1.0))),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(SEED, exist_ok=True)
    names = set()
    for name, _data, *_ in BAD + VALID:
        assert name not in names, name
        names.add(name)
    for old in os.listdir(OUT):
        if old.endswith(".safetensors"):
            os.remove(os.path.join(OUT, old))
    for name, data, _exp in BAD:
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(data)
    for name, data in VALID:
        for d in (OUT, SEED):
            with open(os.path.join(d, name + ".safetensors"), "wb") as f:
                f.write(data)
    with open(os.path.join(OUT, "EXPECTED.tsv"), "w", encoding="utf-8") as f:
        f.write("# file\tsubstring the error message must contain (written by make_corpus.py)\n")
        for name, _data, exp in BAD:
            assert "\t" not in exp and "\n" not in exp
            f.write("%s.safetensors\t%s\n" % (name, exp))
    print("wrote %d bad and %d valid files to %s" % (len(BAD), len(VALID), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
