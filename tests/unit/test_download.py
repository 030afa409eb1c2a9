"""Downloads against a local HTTP server on 127.0.0.1 that serves bytes the test makes."""

import hashlib
import http.server
import os
import socket
import threading
from collections import namedtuple

import pytest

from pipeline.io import download as download_module
from pipeline.io.download import ChecksumError, DownloadError, download

PAYLOAD = os.urandom(300_000)
MD5 = "md5:" + hashlib.md5(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; `server.drop_after` cuts the first response short."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        if self.server.drop_after is not None:
            cut, self.server.drop_after = self.server.drop_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


Server = namedtuple("Server", "url state")


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.requests, httpd.drop_after = [], None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/archive.zip", httpd)
    httpd.shutdown()
    httpd.server_close()


def test_good_download_verifies_and_lands_atomically(server, tmp_path):
    dest = download(server.url, tmp_path / "archive.zip", MD5, retries=0, timeout_s=5)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "archive.zip.part").exists()


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.state.drop_after = 100_000
    with pytest.raises(DownloadError):
        download(server.url, tmp_path / "archive.zip", MD5, retries=0, timeout_s=5)
    part = tmp_path / "archive.zip.part"
    assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    assert not (tmp_path / "archive.zip").exists()
    download(server.url, tmp_path / "archive.zip", MD5, retries=0, timeout_s=5)
    assert (tmp_path / "archive.zip").read_bytes() == PAYLOAD
    assert server.state.requests == [None, "bytes=100000-"]




def test_retry_resumes_within_one_call(server, tmp_path):
    server.state.drop_after = 50_000
    download(server.url, tmp_path / "archive.zip", MD5, retries=2, timeout_s=5, backoff_s=0.01)
    assert (tmp_path / "archive.zip").read_bytes() == PAYLOAD
    assert server.state.requests == [None, "bytes=50000-"]


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ChecksumError, match="archive.zip: sha256 is"):
        download(server.url, tmp_path / "archive.zip", wrong, retries=0, timeout_s=5)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_says_what_to_do(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="download.source: synthetic") as info:
        download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", None, retries=1, timeout_s=2, backoff_s=0.01)
    assert "by hand" in str(info.value) and str(tmp_path) in str(info.value)


def test_not_enough_free_space(server, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    with pytest.raises(DownloadError, match="not enough free space"):
        download(server.url, tmp_path / "archive.zip", MD5, retries=3, timeout_s=5, backoff_s=0.01)
    assert len(server.state.requests) == 1  # not retried
