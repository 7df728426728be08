"""imagelint.sources.layerstream: layer tars (plain/gzip/zstd) streamed into Entries, including
hostile layers built right here. No engine needed."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from imagelint.image import ImageError
from imagelint.sources.layerstream import LayerReadError, read_layer, read_layer_info, sniff_compression

zstandard = pytest.importorskip("zstandard")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- building layers ---------------------------------------------------------------------------

def member(name, kind="file", data=b"", linkname="", mode=0o644, uid=0, gid=0, devmajor=0, devminor=0):
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
                 "fifo": tarfile.FIFOTYPE}[kind]
    info.mode, info.uid, info.gid, info.linkname = mode, uid, gid, linkname
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if kind == "file" else 0
    return info, (data if kind == "file" else None)


def make_tar(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    return data


class ForwardOnly(io.RawIOBase):
    """A pipe-like source: no seek, no tell, and reads return at most ``step`` bytes."""

    def __init__(self, data: bytes, step: int = 65536):
        super().__init__()
        self._data = memoryview(data)
        self._step = step

    def readable(self):
        return True

    def seekable(self):
        return False

    def seek(self, *a):
        raise AssertionError("read_layer must never seek")

    def tell(self):
        raise AssertionError("read_layer must never tell")

    def readinto(self, b):
        n = min(len(b), self._step, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def content_digest(data: bytes) -> bytes:
    """The content hash Entry.digest carries (BLAKE2b-160, see imagelint.hashes)."""
    return hashlib.blake2b(data, digest_size=20).digest()


def rows(entries):
    return [(e.path, e.kind, e.size, e.linkname) for e in entries]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Run in an empty work dir; afterwards nothing may have appeared next to it, at any ``../``
    target, or in the work dir itself (nothing is ever extracted)."""
    work = tmp_path / "work"
    work.mkdir()
    before_parent = sorted(os.listdir(tmp_path))
    before_tmp = set(os.listdir("/tmp"))
    monkeypatch.chdir(work)
    yield work
    assert sorted(os.listdir(tmp_path)) == before_parent
    assert os.listdir(work) == []
    new_in_tmp = {n for n in set(os.listdir("/tmp")) - before_tmp if n.startswith(("evil", "imagelint-evil"))}
    assert not new_in_tmp
    assert not os.path.exists("/imagelint-evil")


# --- kinds, whiteouts, links ---------------------------------------------------------------------

KINDS_LAYER = [
    member("etc", "dir", mode=0o755),
    member("etc/hosts", data=b"127.0.0.1 localhost\n", mode=0o644, uid=1000, gid=1001),
    member("etc/empty"),
    member("etc/hard", "hardlink", linkname="etc/hosts"),
    member("etc/sym", "symlink", linkname="/etc/hosts", mode=0o777),
    member("dev/null", "char", devmajor=1, devminor=3, mode=0o666),
    member("dev/sda", "block", devmajor=8, devminor=0),
    member("run/pipe", "fifo"),
    member("etc/.wh.passwd"),
    member("var/cache/.wh..wh..opq"),
    member("var/.wh..wh.orph"),  # other .wh..wh.* names: aufs bookkeeping, dropped like dive
    member("usr/bin/tool", data=b"\x7fELF" + b"x" * 5000, mode=0o4755),
]


@pytest.mark.parametrize("how", ["tar", "gzip", "zstd"])
def test_kinds_whiteouts_links(how):
    blob = compress(make_tar(KINDS_LAYER), how)
    assert sniff_compression(blob[:4]) == how
    result = read_layer_info(ForwardOnly(blob, step=777), name="blob")
    assert result.compression == how
    entries = {e.path: e for e in result.entries}
    assert rows(result.entries) == [
        ("etc", "dir", 0, ""), ("etc/hosts", "file", 20, ""), ("etc/empty", "file", 0, ""),
        ("etc/hard", "hardlink", 0, "etc/hosts"), ("etc/sym", "symlink", 0, "/etc/hosts"),
        ("dev/null", "char", 0, ""), ("dev/sda", "block", 0, ""), ("run/pipe", "fifo", 0, ""),
        ("etc/passwd", "whiteout", 0, ""), ("var/cache", "opaque", 0, ""),
        ("usr/bin/tool", "file", 5004, ""),
    ]
    hosts = entries["etc/hosts"]
    assert (hosts.mode, hosts.uid, hosts.gid) == (0o644, 1000, 1001)
    assert hosts.digest == content_digest(b"127.0.0.1 localhost\n")
    assert entries["etc/empty"].digest == content_digest(b"")
    assert entries["usr/bin/tool"].mode == 0o4755
    assert entries["usr/bin/tool"].digest == content_digest(b"\x7fELF" + b"x" * 5000)
    assert entries["etc/hard"].digest is None and entries["etc/sym"].digest is None


def test_no_hashing_leaves_digest_none():
    entries = read_layer(io.BytesIO(make_tar(KINDS_LAYER)), hash_content=False)
    assert all(e.digest is None for e in entries)
    assert [e.size for e in entries] == [e.size for e in read_layer(io.BytesIO(make_tar(KINDS_LAYER)))]


def test_big_file_hashed_in_chunks():
    data = os.urandom(1 << 16) * 40  # 2.5 MiB: more than one 1 MiB chunk
    entries = read_layer(ForwardOnly(gzip.compress(make_tar([member("big.bin", data=data)]), compresslevel=1)))
    assert entries[0].size == len(data) and entries[0].digest == content_digest(data)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_format(fmt):
    deep = "/".join(["d%02d" % i for i in range(40)])  # 159 chars: ustar needs its prefix field
    long_file = deep + "/file.txt"
    target = "d00/file.txt" if fmt == tarfile.USTAR_FORMAT else deep + "/file.txt"  # ustar: 100 chars max
    layer = [member(long_file, data=b"abc"), member("link", "symlink", linkname=target)]
    if fmt != tarfile.USTAR_FORMAT:
        very_long = "v" * 300 + "/" + "w" * 200
        layer += [member(very_long, data=b"z"), member("l2", "symlink", linkname="t" * 150)]
    entries = read_layer(io.BytesIO(make_tar(layer, fmt)))
    assert entries[0].path == long_file and entries[0].digest == content_digest(b"abc")
    assert entries[1].linkname == target
    if fmt != tarfile.USTAR_FORMAT:
        assert entries[2].path == "v" * 300 + "/" + "w" * 200
        assert entries[3].linkname == "t" * 150


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_non_utf8_names_are_kept_and_usable(fmt, sandbox):
    name = os.fsdecode(b"opt/caf\xe9/\xff\xfe.txt")  # Latin-1 bytes: not UTF-8
    entries = read_layer(io.BytesIO(make_tar([member(name, data=b"x"),
                                              member("opt/l", "symlink", linkname=os.fsdecode(b"caf\xe9"))], fmt)))
    assert entries[0].path == name
    assert os.fsencode(entries[0].path) == b"opt/caf\xe9/\xff\xfe.txt"  # round-trips to the raw bytes
    assert entries[1].linkname == os.fsdecode(b"caf\xe9")
    json.dumps(entries[0].path)  # reports can serialise it (as escapes)
    entries[0].path.encode("utf-8", "surrogateescape")


def test_pax_overrides_uid_gid_size_and_ignores_global_headers():
    info, data = member("f", data=b"hello")
    info.uid = 3_000_000  # too big for the 7-digit octal field: PAX record
    info.pax_headers = {"uid": "3000000", "gid": "4000000"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}) as tf:
        tf.addfile(info, io.BytesIO(data))
    entries = read_layer(io.BytesIO(buf.getvalue()))
    assert [(e.path, e.uid, e.gid, e.size) for e in entries] == [("f", 3_000_000, 4_000_000, 5)]


def test_root_entry_and_dot_slash_names():
    layer = [member("./", "dir"), member("./etc", "dir"), member("./etc/./a//b", data=b"1"), member("./.wh.gone")]
    assert rows(read_layer(io.BytesIO(make_tar(layer, tarfile.GNU_FORMAT)))) == [
        ("etc", "dir", 0, ""), ("etc/a/b", "file", 1, ""), ("gone", "whiteout", 0, "")]


def test_concatenated_gzip_members_and_zstd_frames():
    a = make_tar([member("a", data=b"1")])[:1024]  # header + data block, no end marker
    b = make_tar([member("b", data=b"2")])
    assert rows(read_layer(io.BytesIO(gzip.compress(a) + gzip.compress(b)))) == [("a", "file", 1, ""), ("b", "file", 1, "")]
    z = zstandard.ZstdCompressor()
    assert rows(read_layer(io.BytesIO(z.compress(a) + z.compress(b)))) == [("a", "file", 1, ""), ("b", "file", 1, "")]


def test_gzip_with_trailing_zero_padding_is_accepted():
    blob = gzip.compress(make_tar([member("a", data=b"1")])) + bytes(512)
    assert rows(read_layer(io.BytesIO(blob))) == [("a", "file", 1, "")]


def test_empty_layer_tar():
    assert read_layer(io.BytesIO(make_tar([]))) == []
    assert read_layer(io.BytesIO(gzip.compress(make_tar([])))) == []


# --- hostile layers ------------------------------------------------------------------------------

def test_dotdot_and_absolute_names_are_neutralised(sandbox):
    layer = [
        member("../../imagelint-evil", data=b"pwned"),
        member("/imagelint-evil-abs", data=b"pwned"),
        member("a/../../../etc/x", data=b"1"),
        member("../.wh.imagelint-evil-wh"),
        member("..", "dir"),
        member("c/..", "dir"),
        member("lnk", "symlink", linkname="../../../../etc/shadow"),
        member("hl", "hardlink", linkname="../../etc/shadow"),
    ]
    entries = read_layer(io.BytesIO(make_tar(layer, tarfile.GNU_FORMAT)))
    assert rows(entries) == [
        ("imagelint-evil", "file", 5, ""), ("imagelint-evil-abs", "file", 5, ""), ("etc/x", "file", 1, ""),
        ("imagelint-evil-wh", "whiteout", 0, ""),
        ("lnk", "symlink", 0, "../../../../etc/shadow"), ("hl", "hardlink", 0, "../../etc/shadow"),
    ]
    assert all(not e.path.startswith(("/", "..")) for e in entries)


def test_symlink_loops_and_dangling_hard_links_are_just_recorded(sandbox):
    layer = [member("a", "symlink", linkname="b"), member("b", "symlink", linkname="a"),
             member("self", "symlink", linkname="self"), member("d/loop", "symlink", linkname="../d"),
             member("h", "hardlink", linkname="missing/target"), member("h2", "hardlink", linkname="h2")]
    assert rows(read_layer(io.BytesIO(make_tar(layer)))) == [
        ("a", "symlink", 0, "b"), ("b", "symlink", 0, "a"), ("self", "symlink", 0, "self"),
        ("d/loop", "symlink", 0, "../d"), ("h", "hardlink", 0, "missing/target"), ("h2", "hardlink", 0, "h2")]


TB = 10 ** 12


def _b256(value: int, width: int) -> bytes:
    return b"\x80" + value.to_bytes(width - 1, "big")


def _header(name: bytes, typeflag: bytes, size: int, extra: dict = None, gnu: bool = True) -> bytes:
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size if size < 8 ** 11 else _b256(size, 12)
    h[136:148] = b"00000000000\0"
    h[156:157] = typeflag
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    for offset, value in (extra or {}).items():
        h[offset:offset + len(value)] = value
    h[148:156] = b"        "
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def old_gnu_sparse_tar(apparent: int, segments, name=b"huge/sparse.img") -> bytes:
    """An old-GNU sparse member ('S') with the given apparent size and data segments."""
    extra = {}
    for i, (offset, data) in enumerate(segments[:4]):
        extra[386 + 24 * i] = _b256(offset, 12)
        extra[386 + 24 * i + 12] = b"%011o\0" % len(data)
    extra[483] = _b256(apparent, 12)
    stored = b"".join(d for _, d in segments)
    pad = (-len(stored)) % 512
    return _header(name, b"S", len(stored), extra) + stored + bytes(pad) + bytes(1024)


def pax_sparse_tar(apparent: int, offset: int, data: bytes) -> bytes:
    """A PAX (GNU sparse 1.0) member: map at the start of the data."""
    sparse_map = b"1\n%d\n%d\n" % (offset, len(data))
    stored = sparse_map + bytes((-len(sparse_map)) % 512) + data
    info = tarfile.TarInfo("huge/GNUSparseFile.0/sparse.img")
    info.size = len(stored)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "huge/sparse.img",
                        "GNU.sparse.realsize": str(apparent)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(stored))
    return buf.getvalue()


@pytest.mark.parametrize("builder", ["old-gnu", "pax-1.0"])
def test_huge_sparse_member_is_counted_not_materialised(builder, sandbox):
    if builder == "old-gnu":
        blob = old_gnu_sparse_tar(TB, [(TB - 4096, b"hello")])
    else:
        blob = pax_sparse_tar(TB, TB - 4096, b"hello")
    start = time.perf_counter()
    entries = read_layer(io.BytesIO(gzip.compress(blob)), name="sparse")
    assert time.perf_counter() - start < 5  # a terabyte of holes would take hours
    assert rows(entries) == [("huge/sparse.img", "file", TB, "")]
    assert entries[0].digest is not None
    assert read_layer(io.BytesIO(blob))[0].digest == entries[0].digest  # deterministic
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:  # the stdlib agrees on the apparent size
        assert [m.size for m in tf] == [TB]


def test_gnu_tar_sparse_file_if_available(tmp_path):
    tar = shutil.which("tar")
    if not tar or b"GNU" not in subprocess.run([tar, "--version"], capture_output=True).stdout:
        pytest.skip("GNU tar not available")
    sparse = tmp_path / "sp"
    with open(sparse, "wb") as f:
        f.truncate(1 << 36)  # 64 GiB apparent
        f.seek((1 << 36) - 4096)
        f.write(b"tail")
    for fmt in (["--format=gnu"], ["--format=posix", "--sparse-version=1.0"], ["--format=posix", "--sparse-version=0.1"]):
        out = tmp_path / "sp.tar"
        subprocess.run([tar, "--sparse", *fmt, "-cf", str(out), "-C", str(tmp_path), "sp"], check=True)
        entries = read_layer(open(out, "rb"))
        assert rows(entries) == [("sp", "file", 1 << 36, "")], fmt
        out.unlink()


def test_sparse_map_bombs_are_refused():
    # extension chain that never ends: each extension block says "one more follows"
    ext = bytearray(512)
    ext[504] = 1
    blob = _header(b"s", b"S", 0, {482: b"\x01", 483: _b256(TB, 12)}) + bytes(ext) * 70000
    with pytest.raises(LayerReadError, match="sparse map too long"):
        read_layer(io.BytesIO(blob))


def test_oversized_metadata_header_is_refused_without_reading_it():
    blob = _header(b"././@PaxHeader", b"x", 10 ** 10) + b"20 path=aaaaaaaaaaa\n"
    with pytest.raises(LayerReadError, match="refusing a hostile archive"):
        read_layer(io.BytesIO(blob))


def test_corrupt_pax_records():
    body = b"99999 path=x\n"
    blob = _header(b"././@PaxHeader", b"x", len(body)) + body + bytes(512 - len(body)) + bytes(1024)
    with pytest.raises(LayerReadError, match="corrupt PAX header"):
        read_layer(io.BytesIO(blob), name="L1")


GOOD = make_tar([member("etc", "dir"), member("etc/a", data=b"A" * 3000), member("etc/b", data=b"B" * 10)])


@pytest.mark.parametrize("blob, message", [
    (b"", "empty"),
    (GOOD[:700], "truncated"),
    (GOOD[:1536 + 100], "truncated inside the data"),
    (GOOD[:5120], "without an end-of-archive marker"),
    (b"this is not a tar archive at all\n" * 40, "not a tar archive"),
    (GOOD[:512] + b"\x01" * 512 + GOOD[1024:], "corrupt tar header"),
    (gzip.compress(GOOD)[:60], "truncated"),
    (gzip.compress(GOOD)[:-4], "truncated"),
    (zstandard.ZstdCompressor().compress(GOOD)[:50], "empty (0 bytes), not a tar archive (after zstd"),
    (zstandard.ZstdCompressor().compress(GOOD)[:-8], "after zstd decompression"),
])
def test_truncated_and_corrupt_layers_raise_image_error(blob, message, sandbox):
    with pytest.raises(ImageError) as info:
        read_layer(ForwardOnly(blob), name="blobs/sha256/feed")
    assert message in str(info.value), str(info.value)
    assert "blobs/sha256/feed" in str(info.value)
    assert "\n" not in str(info.value)


def test_corrupt_gzip_and_zstd_data():
    data = make_tar([member("f%d" % i, data=os.urandom(20) * 50) for i in range(50)])
    bad = bytearray(gzip.compress(data))
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(LayerReadError, match="layer L7: .*(corrupt|truncated|checksum)"):
        read_layer(io.BytesIO(bytes(bad)), name="L7")
    badz = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(data))
    badz[len(badz) // 2] ^= 0xFF
    with pytest.raises(LayerReadError, match="layer L8"):
        read_layer(io.BytesIO(bytes(badz)), name="L8")
    crc = bytearray(gzip.compress(data))
    crc[-6] ^= 0xFF  # the CRC32 trailer: only the drain after the tar's end notices
    with pytest.raises(LayerReadError, match="layer L9"):
        read_layer(io.BytesIO(bytes(crc)), name="L9")


def test_zstd_bomb_reads_in_bounded_memory():
    """A 256 MiB run of zeros compresses to ~8 KB; it is a file's content, streamed and hashed."""
    script = textwrap.dedent(f"""
        import io, resource, sys, tarfile, zstandard
        sys.path.insert(0, {ROOT!r})
        from imagelint.sources.layerstream import read_layer
        size = 256 << 20
        info = tarfile.TarInfo("zeros"); info.size = size
        cobj = zstandard.ZstdCompressor(level=3).compressobj()
        parts = [cobj.compress(info.tobuf(format=tarfile.PAX_FORMAT))]
        zero = bytes(1 << 20)
        for _ in range(size >> 20):
            parts.append(cobj.compress(zero))
        parts.append(cobj.compress(bytes(1024)))
        parts.append(cobj.flush())
        blob = b"".join(parts)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        entries = read_layer(io.BytesIO(blob))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print(len(blob), entries[0].size, grown // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    blob_size, size, grown_mb = map(int, out.stdout.split())
    assert size == 256 << 20 and blob_size < 1 << 20
    assert grown_mb < 64, f"reading a 256 MiB zstd member grew RSS by {grown_mb} MB"


MILLION_SCRIPT = textwrap.dedent("""
    import io, json, resource, sys, time
    sys.path.insert(0, ROOT)
    from imagelint.sources.layerstream import read_layer

    N = 1_000_000
    TEMPLATE = bytearray(512)
    TEMPLATE[100:108] = b"0000644\\0"; TEMPLATE[108:116] = b"0000000\\0"; TEMPLATE[116:124] = b"0000000\\0"
    TEMPLATE[136:148] = b"00000000000\\0"; TEMPLATE[156:157] = b"0"; TEMPLATE[257:265] = b"ustar\\x0000"

    def header(name, size):
        h = bytearray(TEMPLATE)
        h[0:len(name)] = name
        h[124:136] = b"%011o\\0" % size
        h[148:156] = b"        "
        h[148:156] = b"%06o\\0 " % sum(h)
        return bytes(h)


    class Gen(io.RawIOBase):
        # 1,000,000 tiny files (every 10th holds 1 byte), generated as they are read
        def __init__(self):
            self.i = 0; self.buf = b""
        def readable(self): return True
        def readinto(self, b):
            while not self.buf:
                if self.i >= N:
                    if self.i == N:
                        self.buf = bytes(1024); self.i += 1; break
                    return 0
                parts = []
                for i in range(self.i, min(self.i + 2000, N)):
                    size = 1 if i % 10 == 0 else 0
                    parts.append(header(b"d%03d/f%07d" % (i // 1000, i), size))
                    if size:
                        parts.append(b"%c" % (i % 251) + bytes(511))
                self.i = min(self.i + 2000, N)
                self.buf = b"".join(parts)
            n = min(len(b), len(self.buf)); b[:n] = self.buf[:n]; self.buf = self.buf[n:]
            return n

    start = time.perf_counter()
    entries = read_layer(Gen())
    seconds = time.perf_counter() - start
    files = sum(1 for e in entries if e.kind == "file")
    print(json.dumps({"entries": len(entries), "files": files, "seconds": round(seconds, 1),
                      "bytes": sum(e.size for e in entries),
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
""")


def test_a_million_tiny_entries_in_bounded_memory():
    """Peak RSS of the whole process (interpreter + generator + 1M Entry objects) stays sane."""
    script = f"ROOT = {ROOT!r}\n" + MILLION_SCRIPT
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    print("million entries:", stats)
    assert stats["entries"] == 1_000_000 and stats["files"] == 1_000_000
    assert stats["bytes"] == 100_000
    assert stats["maxrss_mb"] < 400, stats
