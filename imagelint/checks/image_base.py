"""Base-image rules: IL4001 heavy-base-image, IL4002 base-image-latest,
IL4003 base-image-untagged, IL4010 untrusted-base-image.

All of them judge ``FROM`` images, so this module also holds the image-reference
parser (:func:`parse_image_ref`) and :func:`base_images`, which yields every FROM
that names an image (not ``scratch``, not an earlier stage).
"""
from __future__ import annotations

import fnmatch
import re

from ..rules import Problem

__all__ = ["ImageRef", "parse_image_ref", "base_images", "heavy_base_image", "base_image_latest",
           "base_image_untagged", "untrusted_base_image"]

_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_VERSION_RE = re.compile(r"(?<![A-Za-z0-9.])v?(\d+(?:\.\d+)*)")
# distribution codenames that official images put in their tags (python:3.12-bookworm)
_CODENAMES = ("trixie", "bookworm", "bullseye", "buster", "stretch", "noble", "jammy", "focal", "bionic")
_PURE_VAR_RE = re.compile(r"^\$(?:\{[A-Za-z_][A-Za-z0-9_]*(?:[:+-][^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)$")


class ImageRef:
    """``[registry/]repository[:tag][@digest]`` split into parts (Docker's rules)."""

    __slots__ = ("text", "registry", "explicit_registry", "repository", "tag", "digest")

    def __init__(self, text: str, registry: str, explicit: bool, repository: str, tag, digest):
        self.text = text
        self.registry = registry  # "docker.io" when none is written
        self.explicit_registry = explicit
        self.repository = repository  # "library/python", "bitnami/redis", "dotnet/sdk"
        self.tag = tag  # None when not written
        self.digest = digest  # "sha256:..." or None

    @property
    def short_name(self) -> str:
        """``python`` for Docker Hub official images, ``mcr.microsoft.com/dotnet/sdk`` elsewhere."""
        if self.registry == "docker.io":
            repo = self.repository
            return repo[len("library/"):] if repo.startswith("library/") else repo
        return f"{self.registry}/{self.repository}"

    @property
    def canonical(self) -> str:
        """Fully qualified reference: ``docker.io/library/python:3.12``."""
        out = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __repr__(self) -> str:
        return f"ImageRef({self.canonical!r})"


def parse_image_ref(text: str) -> ImageRef:
    """Split an image reference; never raises (variables are kept as written)."""
    ref = text.strip()
    rest, _, digest = ref.partition("@")
    registry, explicit = "docker.io", False
    first, slash, remainder = rest.partition("/")
    # Docker: the first component is a registry when it has a '.' or ':' or is localhost
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, explicit, rest = first.lower(), True, remainder
        if registry in _DOCKER_HUB:
            registry = "docker.io"
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
    repository = rest
    if registry == "docker.io" and "/" not in repository:
        repository = "library/" + repository
    return ImageRef(ref, registry, explicit, repository, tag, digest or None)


def base_images(df, shipped_only: bool = False):
    """Yield (stage, ImageRef) for each FROM that pulls an image.

    Skips ``scratch``, references to earlier stages, and images that are only an
    unresolved ``$VAR`` (their value is unknown at lint time).
    """
    for st in df.stages:
        if shipped_only and not st.ships:
            continue
        image = st.image.strip()
        if not image or st.parent is not None or image.lower() == "scratch":
            continue
        if _PURE_VAR_RE.match(image):
            continue
        yield st, parse_image_ref(image)


def _shown(st) -> str:
    """The image as written, plus what ARG defaults made of it."""
    if st.base != st.image:
        return f"`{st.base}` (= `{st.image}`)"
    return f"`{st.image}`"


# -- IL4001 heavy-base-image ----------------------------------------------------

def _fill(template: str, tag: str) -> str:
    """Expand the placeholders documented in rules/IL4001-heavy-base-image.yaml.

    ``{x-}`` / ``{-x}`` forms vanish (with their hyphen) when the tag lacks the part,
    so ``python:{base-}slim`` gives ``python:slim`` for ``python:latest``; bare
    ``{version}``/``{major}``/``{codename}`` show ``<version>`` etc. instead.
    """
    m = _VERSION_RE.search(tag)
    version = m.group(1) if m else ""
    words = tag.split("-")
    codename = next((w for w in words if w in _CODENAMES), "")
    base = "-".join(w for w in words if w != codename) if codename else tag
    if base == "latest":
        base = ""
    values = {
        "tag": tag,
        "version": version or "<version>",
        "major": version.split(".")[0] if version else "<version>",
        "codename": codename or "<codename>",
        "version-": version + "-" if version else "",
        "base-": base + "-" if base else "",
        "-codename": "-" + codename if codename else "",
        "codename-": codename + "-" if codename else "",
    }
    return re.sub(r"\{([a-z-]+)\}", lambda mm: values.get(mm.group(1), mm.group(0)), template)


def heavy_base_image(df, ctx):
    """IL4001: a shipped stage starts from a full image where a slim variant exists."""
    table = list((ctx.options.get("extra-heavy-images") or {}).items())
    table += list((ctx.options.get("heavy-images") or {}).items())
    for st, ref in base_images(df, shipped_only=True):
        if "$" in ref.text or (ref.tag is None and ref.digest is not None):
            continue  # unresolved variable, or pinned by digest alone: the variant is unknown
        tag = ref.tag or "latest"
        key = f"{ref.short_name}:{tag}"
        for pattern, suggestion in table:
            if not fnmatch.fnmatchcase(key, str(pattern)):
                continue
            if suggestion:  # an empty suggestion marks an image that is already small
                text = _fill(str(suggestion), tag)
                yield Problem.at(
                    st.from_instruction,
                    message=(f"{_shown(st)} is a heavy base image that every task launch pulls and unpacks; "
                             f"use {text}"),
                    fix=f"switch to {text}, then add back only the packages the app needs at run time",
                )
            break


# -- IL4002 / IL4003 unpinned base images -------------------------------------------

def base_image_latest(df, ctx):
    """IL4002: ``FROM image:latest`` without a digest."""
    for st, ref in base_images(df):
        if ref.tag == "latest" and ref.digest is None:
            yield Problem.at(
                st.from_instruction,
                message=(f"base image {_shown(st)} uses the moving `latest` tag: the build is not "
                         "reproducible and a new upstream push silently changes (and re-pulls) every layer"),
            )


def base_image_untagged(df, ctx):
    """IL4003: ``FROM image`` with neither tag nor digest (means ``:latest``)."""
    for st, ref in base_images(df):
        if ref.tag is not None or ref.digest is not None:
            continue
        if "$" in ref.repository.rsplit("/", 1)[-1]:
            continue  # FROM python$SUFFIX: the variable may carry the tag
        yield Problem.at(
            st.from_instruction,
            message=(f"base image {_shown(st)} has no tag, so Docker uses `:latest`: the build is not "
                     "reproducible and a new upstream push silently changes (and re-pulls) every layer"),
        )


# -- IL4010 untrusted-base-image ------------------------------------------------------

def _registry_allowed(ref: ImageRef, patterns: list) -> bool:
    names = {ref.registry}
    if ref.registry == "docker.io":
        names.add("hub.docker.com")  # hadolint accepts either spelling for Docker Hub
    return any(fnmatch.fnmatchcase(n, p.strip().lower()) for n in names for p in patterns)


def _image_allowed(ref: ImageRef, patterns: list) -> bool:
    # match the reference as written, in short form (python:3.12) and fully qualified
    forms = {ref.text}
    tail = ""
    if ref.tag is not None:
        tail += ":" + ref.tag
    if ref.digest is not None:
        tail += "@" + ref.digest
    forms.add(ref.short_name + tail)
    forms.add(ref.canonical)
    return any(fnmatch.fnmatchcase(f, p.strip()) for f in forms for p in patterns)


def _trust_problem(ref: ImageRef, registries: list, allowed: list):
    """Why ``ref`` is not trusted, or None."""
    if "$" in ref.text:
        return None  # unresolved variable: cannot judge
    if registries and not _registry_allowed(ref, registries):
        return f"registry `{ref.registry}` is not in trusted-registries ({', '.join(registries)})"
    if allowed and not _image_allowed(ref, allowed):
        return f"it matches none of allowed-base-images ({', '.join(allowed)})"
    return None


def untrusted_base_image(df, ctx):
    """IL4010: FROM (or COPY --from) an image outside the configured registries/images."""
    registries = list(getattr(ctx.config, "trusted_registries", None) or [])
    allowed = list(getattr(ctx.config, "allowed_base_images", None) or [])
    if not registries and not allowed:
        return
    for st, ref in base_images(df):
        why = _trust_problem(ref, registries, allowed)
        if why:
            yield Problem.at(st.from_instruction, message=f"base image {_shown(st)} is not trusted: {why}")
    # COPY --from=<image> pulls an image too, outside any FROM
    for ins in df.walk("COPY"):
        src = ins.flag("from")
        if not isinstance(src, str) or not src or df.stage_named(src) is not None:
            continue
        if src.isdigit() or (":" not in src and "/" not in src and "@" not in src):
            continue  # a stage index or a (mistyped) stage name: IL5001's business
        env = df.env_at(ins) if ins.stage is not None else {}
        ref = parse_image_ref(df.substitute(src, env))
        why = _trust_problem(ref, registries, allowed)
        if why:
            yield Problem.at(ins, message=f"`COPY --from={src}` pulls an untrusted image: {why}")
