"""The compressor behind BFF_COMPRESSION: an answer compressed once, within a bound."""

from __future__ import annotations


def test_a_compressed_answer_is_kept_and_the_store_stays_bounded() -> None:
    import gzip

    from bff_core.litestar._edge import Compression

    compression = Compression()
    body = b'{"product": "' + b"x" * 2000 + b'"}'
    first = compression.compress("gzip", body)
    assert compression.compress("gzip", bytes(body)) is first  # equal bytes, kept
    assert gzip.decompress(first) == body
    assert compression.compress("zstd", body) is not first  # per encoding
    for n in range(5000):  # far more than fits
        compression.compress("gzip", body + str(n).encode())
    assert compression._kept_bytes <= Compression.KEEP_BYTES
    assert (("gzip", body)) not in compression._kept  # the oldest went first
