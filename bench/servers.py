"""Start and stop the servers under test: ours (``python -m app serve``), Orthanc + DICOMweb plugin, nginx.

Each server gets its own folder (config, storage, log) under the run's work directory, listens on a free
loopback port and is stopped by its process id. ``RssSampler`` follows the resident memory of a server's
process tree (the process and its descendants, summed) from /proc in a background thread, for the peak.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
ORTHANC_PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                             "/usr/lib/orthanc/libOrthancDicomWeb.so")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- /proc ---------------------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    kids.extend(int(x) for x in handle.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return kids


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _status_field(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Resident memory of the process and its descendants, in bytes."""
    return sum(_status_field(p, "VmRSS") for p in process_tree(pid))


def tree_hwm(pid: int) -> int:
    """Sum of the kernel's per-process RSS high-water marks (an upper bound of the tree's true peak)."""
    return sum(_status_field(p, "VmHWM") for p in process_tree(pid))


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree (live processes only)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


class RssSampler:
    """Samples tree_rss(pid) every ``interval`` seconds; ``peak`` and ``window()`` peaks for a scenario."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.current = 0
        self._window_peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"rss-{pid}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            value = tree_rss(self.pid)
            with self._lock:
                self.current = value
                self.peak = max(self.peak, value)
                self._window_peak = max(self._window_peak, value)
            self._stop.wait(self.interval)

    def start_window(self) -> int:
        """Reset the window peak; returns the RSS now (a fresh reading)."""
        now = tree_rss(self.pid)
        with self._lock:
            self._window_peak = now
        return now

    def window_peak(self) -> int:
        now = tree_rss(self.pid)
        with self._lock:
            self._window_peak = max(self._window_peak, now)
            return self._window_peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# --- servers -------------------------------------------------------------------------------------------------

class Server:
    name = "server"
    label = "server"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.sampler: RssSampler | None = None
        self._log = None

    # subclasses: command(), health_url, prepare()
    def command(self) -> list[str]:
        raise NotImplementedError

    health_path = "/"

    def prepare(self) -> None:
        pass

    def start(self, timeout: float = 60) -> "Server":
        self.prepare()
        self._log = open(self.folder / "server.log", "ab")
        self.process = subprocess.Popen(self.command(), cwd=self.cwd(), env=self.env(), stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: "
                                   f"{self.log_tail()}")
            try:
                if requests.get(self.url + self.health_path, timeout=2).status_code == 200:
                    self.sampler = RssSampler(self.process.pid)
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in {timeout:.0f} s: {self.log_tail()}")

    def cwd(self):
        return str(self.folder)

    def env(self):
        return dict(os.environ)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.folder / "server.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return tree_rss(self.pid)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.sampler:
            self.sampler.stop()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
            self._log = None

    def version(self) -> str:
        return ""


class OurServer(Server):
    """DICOMcloud for Python, started exactly as other tooling starts it."""
    name = "ours"
    label = "DICOMcloud (ours)"
    health_path = "/health"
    dicomweb = "/api"

    def __init__(self, folder: Path, threads: int | None = None, settings: dict | None = None,
                 workers: int | None = None):
        super().__init__(folder)
        self.threads = threads
        self.workers = workers
        self.settings = {"app:PacsStorageConnection": "|DataDirectory|/Storage",
                         "app:PacsDataArchieve": "sqlite:///|DataDirectory|/pacs.sqlite3",
                         "qido:maximumResultsLimit": "1000"}
        self.settings.update(settings or {})

    def prepare(self) -> None:
        lines = ['<?xml version="1.0" encoding="utf-8"?>', "<configuration>", "  <appSettings>"]
        lines += [f'    <add key="{k}" value="{v}" />' for k, v in self.settings.items()]
        lines += ["  </appSettings>", "</configuration>"]
        (self.folder / "web.config").write_text("\n".join(lines), encoding="utf-8")

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "app", "serve", "--config", str(self.folder / "web.config"),
               "--host", "127.0.0.1", "--port", str(self.port)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if self.workers:                      # `serve --workers N` (forked processes); RSS is summed over them
            cmd += ["--workers", str(self.workers)]
        return cmd

    def cwd(self):
        return str(REPO)

    def env(self):
        return {k: v for k, v in os.environ.items() if not k.startswith(("app__", "APPSETTING_"))}

    def storage_dir(self) -> Path:
        return self.folder / "App_Data" / "Storage"

    def version(self) -> str:
        try:
            rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        except OSError:
            rev = "?"
        from app import __version__
        return f"{__version__} (git {rev})"


class OrthancServer(Server):
    """Debian's Orthanc with the DICOMweb plugin, its own config, storage and loopback port."""
    name = "orthanc"
    label = "Orthanc"
    health_path = "/system"
    dicomweb = "/dicom-web"

    def __init__(self, folder: Path, settings: dict | None = None):
        super().__init__(folder)
        self.settings = settings or {}

    @staticmethod
    def plugin_path() -> str:
        try:
            listed = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True,
                                    timeout=10).stdout.split()
        except OSError:
            listed = []
        for path in [p for p in listed if p.endswith("libOrthancDicomWeb.so")] + list(ORTHANC_PLUGIN_CANDIDATES):
            if os.path.exists(path):
                return path
        raise RuntimeError("libOrthancDicomWeb.so not found; install the Debian package orthanc-dicomweb")

    def prepare(self) -> None:
        storage = self.folder / "OrthancStorage"
        storage.mkdir(exist_ok=True)
        config = {
            "Name": "bench",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "HttpServerEnabled": True,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "HttpCompressionEnabled": False,   # our server does not compress either; compare bytes on the wire
            "SaveJobs": False,
            "StorageCompression": False,
            "SyncStorageArea": True,           # Orthanc's default: fsync, like our blob store and SQLite FULL
            "OverwriteInstances": False,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "HttpThreadsCount": 50,
            "HttpRequestTimeout": 600,
            "KeepAlive": True,
            "TcpNoDelay": True,
            "Plugins": [self.plugin_path()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado",
                         "Host": f"127.0.0.1:{self.port}", "Ssl": False},
        }
        config.update(self.settings)
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    def command(self) -> list[str]:
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        return [binary, str(self.folder / "orthanc.json")]

    def version(self) -> str:
        try:
            system = requests.get(self.url + "/system", timeout=5).json()
            plugin = requests.get(self.url + "/plugins/dicom-web", timeout=5).json()
            return f"{system.get('Version')} (DICOMweb plugin {plugin.get('Version')})"
        except (requests.RequestException, ValueError):
            return "?"


class NginxServer(Server):
    """nginx-light serving a folder of static files (the physical limit of the loopback path)."""
    name = "nginx"
    label = "nginx (static)"
    health_path = "/health.txt"

    def __init__(self, folder: Path, root: Path, workers: int = 1):
        super().__init__(folder)
        self.root = Path(root)
        self.workers = workers

    def prepare(self) -> None:
        (self.root / "health.txt").write_text("ok\n")
        for sub in ("logs", "tmp"):
            (self.folder / sub).mkdir(exist_ok=True)
        # as root, nginx's workers would run as "nobody" and could not read the private temp folder
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = f"""
{user}
worker_processes {self.workers};
error_log {self.folder}/logs/error.log warn;
pid {self.folder}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {self.folder}/tmp/body;
    proxy_temp_path {self.folder}/tmp/proxy;
    fastcgi_temp_path {self.folder}/tmp/fastcgi;
    uwsgi_temp_path {self.folder}/tmp/uwsgi;
    scgi_temp_path {self.folder}/tmp/scgi;
    types {{ application/dicom dcm; application/octet-stream bin; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
    }}
}}
"""
        (self.folder / "nginx.conf").write_text(conf)

    def command(self) -> list[str]:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        return [binary, "-c", str(self.folder / "nginx.conf"), "-p", str(self.folder), "-g", "daemon off;"]

    def version(self) -> str:
        try:
            out = subprocess.run([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True,
                                 text=True, timeout=10)
            return (out.stderr or out.stdout).strip().split("/")[-1]
        except OSError:
            return "?"
