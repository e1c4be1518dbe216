"""Make the airspeed velocity dashboard work without the public CDNs.

``asv publish`` writes an ``index.html`` that loads jQuery, flot and its plugins,
flot-orderbars, stupidtable, blueimp-md5 and Bootstrap from public CDNs, pinned with
``integrity`` hashes; without access to those hosts the page shows only "One or more
external (JavaScript) dependencies of airspeed velocity failed to load".

``python -m fastbp dashboard`` takes the same libraries from the npm registry instead
(``npm pack NAME@VERSION``, kept in a cache folder), copies the files the page needs
into ``vendor/`` beside ``index.html`` and points the page's ``<script>`` and ``<link>``
tags at them.  The CDN builds' ``integrity`` hashes do not match the npm files (cdnjs
minifies flot itself, for one), so those attributes and ``crossorigin`` are dropped;
the files' integrity is npm's check of each tarball against the registry.  Nothing is
fetched from anywhere but the npm registry, and nothing is kept in the repository.

Where the npm registry lacks the exact file the page names:

- flot 0.8.3 on npm has no minified files: the unminified ``jquery.flot*.js`` of the
  same release are used.
- stupidtable 1.0.1 is on npm only as the project's later release: the package
  ``stupid-table-plugin`` (the same project, joequery/Stupid-Table-Plugin) has 1.1.3
  alone, whose ``stupidtable()`` and ``stupidsort()`` are the calls asv makes.

An address the table below does not know stops the step with an error naming it, so
a new asv release cannot leave a page that still reaches out to a CDN unnoticed.
"""
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

VENDOR = "vendor"

#: cdnjs library name -> npm package, where they differ.
_CDNJS_PACKAGES = {"stupidtable": "stupid-table-plugin"}
#: (npm package, version the page asks for) -> version the npm registry has.
_VERSIONS = {("stupid-table-plugin", "1.0.1"): "1.1.3"}


@dataclass(frozen=True)
class Asset:
    """One file of an npm package that replaces one CDN address."""

    url: str
    package: str
    version: str
    path: str  # inside the package

    @property
    def spec(self):
        return f"{self.package}@{self.version}"

    @property
    def local(self):
        """Where the file goes, relative to the html folder."""
        return posixpath.join(VENDOR, self.spec, self.path)


def asset_for(url):
    """The npm package, version and file that stand in for the CDN address ``url``.

    The file is resolved against the package later (:func:`_resolve`): a minified name
    falls back to the unminified file of the same release.
    """
    parts = urlsplit(url)
    path = parts.path
    if parts.netloc == "code.jquery.com":
        m = re.fullmatch(r"/jquery-(\d+\.\d+\.\d+)((?:\.slim)?(?:\.min)?\.js)", path)
        if m:
            return Asset(url, "jquery", m.group(1), "dist/jquery" + m.group(2))
    elif parts.netloc == "cdn.jsdelivr.net":
        m = re.fullmatch(r"/npm/((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)", path)
        if m:
            return Asset(url, m.group(1), m.group(2), m.group(3))
    elif parts.netloc == "cdnjs.cloudflare.com":
        m = re.fullmatch(r"/ajax/libs/([^/]+)/([^/]+)/(.+)", path)
        if m:
            package = _CDNJS_PACKAGES.get(m.group(1), m.group(1))
            version = _VERSIONS.get((package, m.group(2)), m.group(2))
            return Asset(url, package, version, m.group(3))
    raise ValueError(f"no npm package is known for the dashboard's address {url}")


_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_DROP_ATTRS = re.compile(r"""\s+(integrity|crossorigin)(\s*=\s*(["'])[^"']*\3|(?=[\s>/]))""",
                         re.IGNORECASE)


def external_urls(html):
    """The http(s) addresses of the ``<script src>`` and ``<link href>`` tags of ``html``."""
    urls = []
    for tag in _TAG.finditer(html):
        m = _URL_ATTR.search(tag.group(0))
        if m:
            urls.append(m.group(3))
    return urls


def rewrite(html, local_paths):
    """``html`` with every CDN address in ``local_paths`` (url -> relative path) replaced,
    and the ``integrity`` and ``crossorigin`` attributes of those tags dropped."""

    def fix(tag):
        text = tag.group(0)
        m = _URL_ATTR.search(text)
        if not m or m.group(3) not in local_paths:
            return text
        text = text[:m.start(3)] + local_paths[m.group(3)] + text[m.end(3):]
        return _DROP_ATTRS.sub("", text)

    return _TAG.sub(fix, html)


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastbp" / "npm"


def fetch_package(package, version, cache_dir, npm="npm"):
    """The folder of ``package@version`` unpacked from the npm registry (``npm pack``),
    downloaded once into ``cache_dir``."""
    cache_dir = Path(cache_dir)
    folder = cache_dir / f"{package.replace('/', '-')}-{version}"
    if (folder / "package.json").is_file():
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    npm_path = shutil.which(npm)
    if npm_path is None:
        raise RuntimeError(f"{npm!r} not found: the dashboard step takes its JavaScript from the "
                           "npm registry with npm pack (Debian: apt-get install npm)")
    done = subprocess.run([npm_path, "pack", f"{package}@{version}", "--json"], cwd=cache_dir,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"npm pack {package}@{version} failed:\n{done.stderr.strip()}")
    try:
        filename = json.loads(done.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        filename = f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    tarball = cache_dir / filename
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _extract(tarball, staging)
    tarball.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _extract(tarball, dest):
    """The regular files under ``package/`` of an npm tarball, into ``dest``."""
    dest = Path(dest)
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = posixpath.normpath(member.name)
            top, _, rest = name.partition("/")
            if not member.isfile() or not rest or rest.startswith("../") or name.startswith("/"):
                continue
            target = dest / rest
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _resolve(folder, path):
    """``path`` in the unpacked package, or the unminified file of that name."""
    if (folder / path).is_file():
        return path
    plain = re.sub(r"\.min\.(js|css)$", r".\1", path)
    if (folder / plain).is_file():
        return plain
    raise FileNotFoundError(f"{folder.name} has neither {path} nor {plain}")


_CSS_URL = re.compile(r"""url\(\s*(["']?)([^"')]+)\1\s*\)""")


def _css_dependencies(css_text, css_path):
    """Package-relative paths of the files a stylesheet refers to (fonts, images)."""
    found = []
    for m in _CSS_URL.finditer(css_text):
        ref = m.group(2).strip()
        if re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.IGNORECASE) or ref.startswith(("/", "#")):
            continue  # data:, http:, absolute
        ref = re.split(r"[?#]", ref, maxsplit=1)[0]
        found.append(posixpath.normpath(posixpath.join(posixpath.dirname(css_path), ref)))
    return found


def vendor_dashboard(html_dir, cache_dir=None, npm="npm", log=print):
    """Copy the dashboard's JavaScript and CSS from npm packages next to ``index.html`` and
    point the page at them.  Returns the list of :class:`Asset` put in place."""
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: run `asv publish` first")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    html = index.read_text(encoding="utf-8")
    assets = [asset_for(url) for url in external_urls(html)]
    local_paths = {}
    for asset in assets:
        folder = fetch_package(asset.package, asset.version, cache_dir, npm)
        path = _resolve(folder, asset.path)
        files = [path]
        if path.endswith(".css"):
            text = (folder / path).read_text(encoding="utf-8", errors="replace")
            files += [p for p in _css_dependencies(text, path) if (folder / p).is_file()]
        for rel in files:
            target = html_dir / VENDOR / asset.spec / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / rel, target)
        local_paths[asset.url] = posixpath.join(VENDOR, asset.spec, path)
        log(f"{asset.url}\n    -> {local_paths[asset.url]}  (npm {asset.spec})")
    index.write_text(rewrite(html, local_paths), encoding="utf-8")
    if not assets:
        log(f"{index} loads nothing from a CDN (already done?)")
    return assets


def main(html_dir=".asv/html", cache_dir=None):
    try:
        assets = vendor_dashboard(html_dir, cache_dir)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"python -m fastbp dashboard: {exc}", file=sys.stderr)
        return 1
    if assets:
        print(f"{html_dir}/index.html now loads {len(assets)} files from {html_dir}/{VENDOR}/; "
              f"view it with `asv preview` (or any static web server)")
    return 0
