"""A real registry for the pull tests: Debian's docker-registry (distribution
2.8) on 127.0.0.1, plain, with htpasswd (Basic) auth, or with token auth
backed by a small token service written here (JWTs signed with openssl), plus
a forward HTTP proxy that counts and can throttle what it relays, and a
minimal pusher for hand-made images (skopeo pushes the test archives).

Only the Python standard library, docker-registry, skopeo, htpasswd and
openssl are used.
"""

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
import urllib.request

REGISTRY_BINARY = "/usr/bin/docker-registry"

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- token service ------------------------------------------------------------

class TokenService:
    """Issues registry JWTs (RS256, x5c chain) the way Docker Hub's auth
    service does: anonymous callers may pull repositories under `public/`,
    `users` (name -> password) may pull and push everything. Wrong
    credentials get 401."""

    def __init__(self, workdir, users, service="sarus-test-registry", issuer="sarus-test-issuer"):
        self.workdir = workdir
        self.users = users
        self.service = service
        self.issuer = issuer
        self.key = os.path.join(workdir, "token.key")
        self.cert = os.path.join(workdir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-days", "2", "-subj", "/CN=sarus-test-token"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, stdout=subprocess.PIPE).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []  # (user or None, scopes)
        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self):
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, payload):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(payload).encode())).encode()
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input,
                                   check=True, stdout=subprocess.PIPE).stdout
        return signing_input.decode() + "." + b64url(signature)

    def token(self, user, scopes):
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            name, actions = parts[1], parts[2].split(",")
            if user is None:
                allowed = [a for a in actions if a == "pull"] if name.startswith("public/") else []
            else:
                allowed = [a for a in actions if a in ("pull", "push")]
            if allowed:
                access.append({"type": "repository", "name": name, "actions": allowed})
        now = int(time.time())
        return self.sign({"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300,
                          "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access})

    def _handler(self):
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if service.users.get(name) != password:
                        self.send_response(401)
                        body = b'{"details":"incorrect username or password"}'
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    user = name
                scopes = query.get("scope", [])
                service.requests.append((user, scopes))
                token = service.token(user, scopes)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- registry -----------------------------------------------------------------

class Registry:
    """docker-registry serving from a private storage directory.
    auth: None, ("htpasswd", {user: password}) or ("token", TokenService)."""

    def __init__(self, workdir, auth=None, port=None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.storage = os.path.join(workdir, "storage")
        self.log_file = os.path.join(workdir, "registry.log")
        self.port = port or free_port()
        self.auth = auth
        self.credentials = None  # for pushing: (user, password)
        lines = ["version: 0.1",
                 "log:", "  level: info", "  formatter: text", "  accesslog:", "    disabled: false",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
                 "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}", "  secret: sarus-tests"]
        if auth and auth[0] == "htpasswd":
            users = auth[1]
            htpasswd = os.path.join(workdir, "htpasswd")
            for i, (name, password) in enumerate(users.items()):
                subprocess.run(["htpasswd", "-B", "-i"] + (["-c"] if i == 0 else []) + [htpasswd, name],
                               input=password.encode(), check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            lines += ["auth:", "  htpasswd:", "    realm: sarus-test-realm", f"    path: {htpasswd}"]
            self.credentials = next(iter(users.items()))
        elif auth and auth[0] == "token":
            tokens = auth[1]
            lines += ["auth:", "  token:", f"    realm: {tokens.realm}", f"    service: {tokens.service}",
                      f"    issuer: {tokens.issuer}", f"    rootcertbundle: {tokens.cert}"]
            self.credentials = next(iter(tokens.users.items()))
        self.config = os.path.join(workdir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None
        self.start()

    @property
    def address(self):
        return "127.0.0.1" if self.port == 80 else f"127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.log_file, "a")
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", self.config], stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()

    stop = kill

    def log_text(self):
        with open(self.log_file, errors="replace") as f:
            return f.read()

    def blob_data_path(self, digest):
        hexdigest = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256", hexdigest[:2],
                            hexdigest, "data")

    def push_archive(self, archive, repository, tag="latest", all_images=False):
        """Pushes a docker-archive or OCI archive (or "oci:DIR:ref") with skopeo."""
        if archive.startswith("oci:"):
            source = archive
        elif archive.endswith(".oci.tar"):
            source = "oci-archive:" + archive
        else:
            source = "docker-archive:" + archive
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if all_images:
            argv.append("--all")
        if self.credentials:
            argv += ["--dest-creds", f"{self.credentials[0]}:{self.credentials[1]}"]
        argv += [source, f"docker://{self.address}/{repository}:{tag}"]
        subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self.raw_manifest_digest(repository, tag)

    def raw_manifest_digest(self, repository, reference):
        """Digest of a manifest as served, through skopeo (works with auth)."""
        argv = ["skopeo", "inspect", "--raw", "--tls-verify=false"]
        if self.credentials:
            argv += ["--creds", f"{self.credentials[0]}:{self.credentials[1]}"]
        argv.append(f"docker://{self.address}/{repository}:{reference}")
        return sha256(subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout)

    def manifest_digest(self, repository, reference):
        """Digest of a manifest as the registry serves it (plain registries only)."""
        body, _ = self.get_manifest(repository, reference)
        return sha256(body)

    def get_manifest(self, repository, reference):
        request = urllib.request.Request(
            f"http://{self.address}/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join([MT_OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json",
                                          MT_OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"])})
        with urllib.request.urlopen(request) as response:
            return response.read(), response.headers.get("Content-Type")

    # Minimal pusher for images made here (plain registries only).
    def put_blob(self, repository, data):
        digest = sha256(data)
        url = f"http://{self.address}/v2/{repository}/blobs/uploads/"
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST")) as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.address}{location}"
        location += ("&" if "?" in location else "?") + "digest=" + urllib.parse.quote(digest)
        request = urllib.request.Request(location, data=data, method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(request) as r:
            assert r.status == 201, r.status
        return digest

    def put_manifest(self, repository, reference, document, media_type):
        body = json.dumps(document, separators=(",", ":")).encode()
        request = urllib.request.Request(f"http://{self.address}/v2/{repository}/manifests/{reference}",
                                         data=body, method="PUT", headers={"Content-Type": media_type})
        with urllib.request.urlopen(request) as r:
            assert r.status == 201, r.status
        return sha256(body), len(body)

    def push_image(self, repository, tag, layers, config=None, architecture="amd64", variant=None,
                   diff_ids=None):
        """Pushes an OCI image made of gzip layers given as tar bytes (or
        already compressed when bytes start with the gzip or zstd magic), and
        the diff ids of their content unless given. Returns (manifest digest,
        manifest size, [layer digests])."""
        blobs = [layer if layer[:2] == b"\x1f\x8b" or layer[:4] == ZSTD_MAGIC else gzip.compress(layer, 6, mtime=0)
                 for layer in layers]
        layer_digests = [self.put_blob(repository, blob) for blob in blobs]
        image_config = {"architecture": architecture, "os": "linux",
                        "config": config or {"Cmd": ["/bin/sh"]},
                        "rootfs": {"type": "layers",
                                   "diff_ids": diff_ids or [sha256(decompress(b)) for b in blobs]}}
        if variant:
            image_config["variant"] = variant
        config_bytes = json.dumps(image_config).encode()
        config_digest = self.put_blob(repository, config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                    "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                    "layers": [{"mediaType": MT_OCI_LAYER_ZSTD if b[:4] == ZSTD_MAGIC else MT_OCI_LAYER_GZIP,
                                "digest": d, "size": len(b)} for d, b in zip(layer_digests, blobs)]}
        digest, size = self.put_manifest(repository, tag, manifest, MT_OCI_MANIFEST)
        return digest, size, layer_digests

    def push_index(self, repository, tag, entries):
        """entries: [(manifest digest, size, {"os":..,"architecture":..[,"variant":..]})]"""
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                 "manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": d, "size": s, "platform": p}
                               for d, s, p in entries]}
        return self.put_manifest(repository, tag, index, MT_OCI_INDEX)[0]


def zstd_compress(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


def decompress(blob):
    if blob[:4] == ZSTD_MAGIC:
        return subprocess.run(["zstd", "-q", "-dc"], input=blob, stdout=subprocess.PIPE, check=True).stdout
    return gzip.decompress(blob)


def make_layer(files):
    """A tar layer: {path: bytes (file) | None (directory)}; deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def pseudo_random(seed, size):
    """Incompressible deterministic bytes, fast enough for tens of MB."""
    out = bytearray()
    block = hashlib.sha512(seed.encode()).digest()
    counter = 0
    while len(out) < size:
        out += hashlib.shake_256(block + counter.to_bytes(8, "little")).digest(1 << 16)
        counter += 1
    return bytes(out[:size])


# --- forward proxy ------------------------------------------------------------

class CountingProxy:
    """A forward HTTP proxy (HTTP_PROXY) that records every request it relays
    (method, path), counts concurrent blob transfers, and relays bodies at
    most at `rate` bytes/s when set. When the upstream cannot be reached it
    answers 502, as a real proxy does."""

    def __init__(self, rate=None):
        self.rate = rate
        # Fault injection for blob GETs: answer the next ones with these
        # statuses instead of relaying them, and cut the next transfer after
        # this many body bytes (a connection reset mid-blob).
        self.fail_statuses = []
        self.cut_after = None
        self.ranges = []  # Range headers seen on blob GETs
        # Blob GETs redirected to this host, a storage of another party that
        # asks for a token at a realm of its own; what it is sent is kept.
        self.storage_host = None
        self.storage_authorizations = []
        self.requests = []
        self.relayed = 0  # body bytes of blob answers
        self.active_blobs = 0
        self.max_active_blobs = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def blob_requests(self, method="GET"):
        return [p for m, p in self.requests if m == method and "/blobs/" in p]

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, headers=(), body=b""):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def storage(self, url):
                with proxy.lock:
                    proxy.storage_authorizations.append((url.path, self.headers.get("Authorization", "")))
                if url.path == "/token":
                    return self.answer(200, [("Content-Type", "application/json")], b'{"token": "from-storage"}')
                realm = f'Bearer realm="http://{proxy.storage_host}/token",service="storage"'
                self.answer(401, [("WWW-Authenticate", realm)])

            def relay(self, method):
                url = urllib.parse.urlparse(self.path)
                path = url.path + (("?" + url.query) if url.query else "")
                is_blob = "/blobs/" in url.path
                if proxy.storage_host and url.hostname == proxy.storage_host:
                    return self.storage(url)
                if proxy.storage_host and is_blob and method == "GET":
                    return self.answer(307, [("Location", f"http://{proxy.storage_host}/blob{url.path}")])
                with proxy.lock:
                    proxy.requests.append((method, url.path))
                    status = proxy.fail_statuses.pop(0) if is_blob and proxy.fail_statuses else None
                    if is_blob and self.headers.get("Range"):
                        proxy.ranges.append(self.headers["Range"])
                if status:
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-connection", "connection", "keep-alive")}
                try:
                    upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
                    upstream.request(method, path, headers=headers)
                    answer = upstream.getresponse()
                except (OSError, http.client.HTTPException):
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                        self.send_header(k, v)
                if answer.getheader("Content-Length") is None and method != "HEAD":
                    self.send_header("Connection", "close")  # the end of the body is the end
                    self.close_connection = True
                self.end_headers()
                if method == "HEAD":
                    upstream.close()
                    return
                cut = None
                if is_blob:
                    with proxy.lock:
                        length = int(answer.getheader("Content-Length") or 0)
                        if proxy.cut_after is not None and length > proxy.cut_after:
                            cut, proxy.cut_after = proxy.cut_after, None
                        proxy.active_blobs += 1
                        proxy.max_active_blobs = max(proxy.max_active_blobs, proxy.active_blobs)
                try:
                    chunk_size = 64 * 1024
                    sent = 0
                    while True:
                        if cut is not None and sent >= cut:
                            raise ConnectionResetError("fault injected by the test proxy")
                        chunk = answer.read(chunk_size)
                        sent += len(chunk)
                        if not chunk:
                            if answer.length:  # http.client returns b"" on a truncated body
                                raise http.client.IncompleteRead(b"", answer.length)
                            break
                        self.wfile.write(chunk)
                        if is_blob:
                            with proxy.lock:
                                proxy.relayed += len(chunk)
                        if proxy.rate:
                            time.sleep(len(chunk) / proxy.rate)
                except (OSError, http.client.HTTPException):
                    # Upstream died mid-body: drop the client connection too.
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                finally:
                    if is_blob:
                        with proxy.lock:
                            proxy.active_blobs -= 1
                    upstream.close()

            def do_GET(self):
                self.relay("GET")

            def do_HEAD(self):
                self.relay("HEAD")

        return Handler

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
