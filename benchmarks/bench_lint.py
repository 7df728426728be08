#!/usr/bin/env python3
"""Whole-process speed of ``imagelint lint`` against hadolint.

    python benchmarks/bench_lint.py [--runs N] [--json OUT] [--profile] [--compare-click]

Cases: (a) one typical ~30-line multi-stage Dockerfile, (b) 200 varied Dockerfiles
(python, node, go, java, alpine, debian/ubuntu, rpm-based, ruby/php, large multi-stage
ones with heredocs and ONBUILD), each in a small build context, linted in one call.
The corpus is generated from a fixed seed into a temporary directory, removed at the end.

Both tools run as a user runs them: a new process, default settings, no config file
(XDG_CONFIG_HOME and HOME point to empty directories), output to /dev/null, byte-code
caches allowed (PYTHONDONTWRITEBYTECODE is dropped, as on a user's machine). Each case
is warmed once per tool (which also fills imagelint's rule cache), then timed N times
per tool, alternating the tools so that machine noise hits both alike. Reported: the
median wall time (process start to exit, time.perf_counter), the ratio and the target,
the median CPU time (user+sys from os.wait4, less sensitive to a busy machine), and
peak RSS (by /usr/bin/time when installed; rusage's maxrss is only an upper bound,
as Linux keeps the forked benchmark process's high-water mark across exec).

imagelint is the console script next to sys.executable. When that is an editable
install whose setuptools import hook costs every Python start ~10 ms, the script
also measures a "clean install": a copy of the package laid out as a wheel installs
it, in a throwaway venv that reuses this environment's dependencies, started through
the same console-script template pip writes. --compare-click adds the click app
itself as the entry point, i.e. what imagelint._entry's fast path saves.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGETS = {"single": 1.5, "batch200": 1.0}  # imagelint median / hadolint median, at most

# --------------------------------------------------------------------------------------
# corpus (deterministic: a fixed seed and fixed templates)

TYPICAL = """\
# syntax=docker/dockerfile:1
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
RUN apt-get update \\
    && apt-get install -y --no-install-recommends build-essential libpq-dev \\
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --prefix=/install -r requirements.txt
COPY . .
RUN python -m compileall -q /src

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="orders-api" \\
      org.opencontainers.image.source="https://github.com/example/orders-api"
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PATH=/usr/local/bin:$PATH
RUN apt-get update && apt-get install -y libpq5 curl
RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY --from=build /install /usr/local
COPY --from=build /src /app
RUN chown -R app:app /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s CMD curl -f http://localhost:8000/health || exit 1
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app.wsgi:application"]
"""


def _python(r: random.Random) -> str:
    v = r.choice(["3.9", "3.10", "3.11", "3.12"])
    base = r.choice([f"python:{v}", f"python:{v}-slim", f"python:{v}-slim-bookworm", f"python:{v}-alpine"])
    alpine = base.endswith("alpine")
    pkgs = " ".join(r.sample(["gcc", "libpq-dev", "libffi-dev", "git", "curl", "make", "libxml2-dev"], 3))
    lines = [f"FROM {base}"]
    if r.random() < 0.5:
        lines += ["ENV PYTHONDONTWRITEBYTECODE=1 \\", "    PYTHONUNBUFFERED=1 \\",
                  f"    PIP_NO_CACHE_DIR={r.choice(['1', 'off', 'true'])}"]
    lines.append(f"WORKDIR /{r.choice(['app', 'srv', 'code', 'usr/src/app'])}")
    if alpine:
        lines.append(f"RUN apk {r.choice(['add', 'add --no-cache', 'update && apk add'])} "
                     f"{pkgs.replace('-dev', '-dev').replace('libpq-dev', 'postgresql-dev')}")
    elif r.random() < 0.5:
        lines += ["RUN apt-get update && \\",
                  f"    apt-get install -y {r.choice(['', '--no-install-recommends '])}{pkgs}"
                  + (" && \\\n    rm -rf /var/lib/apt/lists/*" if r.random() < 0.5 else "")]
    else:
        lines += ["RUN set -eux; \\", "    apt-get update; \\",
                  f"    apt-get install -y --no-install-recommends {pkgs}; \\",
                  "    apt-get clean; \\", "    rm -rf /var/lib/apt/lists/*"]
    lines.append("COPY requirements.txt .")
    lines.append(r.choice(["RUN pip install -r requirements.txt",
                           "RUN pip install --no-cache-dir -r requirements.txt",
                           "RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt",
                           "RUN python -m pip install --upgrade pip && pip install -r requirements.txt"]))
    if r.random() < 0.3:
        lines.append("RUN pip install gunicorn==21.2.0 'uvicorn[standard]>=0.23'")
    lines.append(r.choice(["COPY . .", "COPY src/ ./src/", "ADD . /app"]))
    if r.random() < 0.5:
        lines += ["RUN adduser --disabled-password --gecos '' app && chown -R app /app", "USER app"]
    lines.append(f"EXPOSE {r.choice([5000, 8000, 8080])}")
    lines.append(r.choice(['CMD ["python", "app.py"]', "CMD python app.py",
                           'ENTRYPOINT ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]',
                           'CMD ["uvicorn", "main:app", "--host", "0.0.0.0"]']))
    return "\n".join(lines) + "\n"


def _node(r: random.Random) -> str:
    v = r.choice(["18", "20", "22"])
    base = r.choice([f"node:{v}", f"node:{v}-alpine", f"node:{v}-bookworm-slim"])
    install = r.choice(["npm install", "npm ci", "npm ci --omit=dev", "yarn install --frozen-lockfile",
                        "npm ci && npm cache clean --force"])
    multi = r.random() < 0.5
    lines = [f"FROM {base}" + (" AS build" if multi else ""), "WORKDIR /app"]
    lines.append(r.choice(["COPY package*.json ./", "COPY package.json yarn.lock ./", "COPY . ."]))
    lines.append(f"RUN {install}")
    if lines[2] != "COPY . .":
        lines.append("COPY . .")
    lines.append("RUN npm run build")
    if multi:
        lines += ["", f"FROM node:{v}-alpine", "WORKDIR /app", "ENV NODE_ENV=production",
                  "COPY --from=build /app/dist ./dist", "COPY --from=build /app/node_modules ./node_modules",
                  "USER node"]
    if r.random() < 0.4:
        lines.append("RUN npm install -g pm2")
    lines.append(f"EXPOSE {r.choice([3000, 8080])}")
    lines.append(r.choice(['CMD ["node", "dist/server.js"]', "CMD npm start", 'CMD ["npm", "run", "start"]',
                           'CMD ["pm2-runtime", "dist/server.js"]']))
    return "\n".join(lines) + "\n"


def _go(r: random.Random) -> str:
    v = r.choice(["1.21", "1.22", "1.23"])
    final = r.choice(["gcr.io/distroless/static-debian12", "scratch", "alpine:3.19", "debian:bookworm-slim",
                      "alpine:latest"])
    lines = [f"FROM golang:{v}{r.choice(['', '-alpine', '-bookworm'])} AS builder", "WORKDIR /src",
             "COPY go.mod go.sum ./"]
    lines.append(r.choice(["RUN go mod download",
                           "RUN --mount=type=cache,target=/go/pkg/mod go mod download"]))
    lines.append("COPY . .")
    lines.append(r.choice(["RUN CGO_ENABLED=0 GOOS=linux go build -ldflags='-s -w' -o /out/app ./cmd/app",
                           "RUN go build -o /out/app .",
                           "RUN --mount=type=cache,target=/root/.cache/go-build \\\n"
                           "    --mount=type=cache,target=/go/pkg/mod \\\n"
                           "    CGO_ENABLED=0 go build -trimpath -o /out/app ./cmd/app"]))
    lines += ["", f"FROM {final}"]
    if final.startswith("alpine"):
        lines.append(r.choice(["RUN apk add --no-cache ca-certificates tzdata", "RUN apk add ca-certificates",
                               "RUN apk update && apk add ca-certificates"]))
    elif final.startswith("debian"):
        lines.append("RUN apt-get update && apt-get install -y ca-certificates")
    lines.append("COPY --from=builder /out/app /app")
    if r.random() < 0.5:
        lines.append("USER 65532:65532")
    lines.append('ENTRYPOINT ["/app"]')
    return "\n".join(lines) + "\n"


def _java(r: random.Random) -> str:
    tool = r.choice(["maven", "gradle"])
    jdk = r.choice(["17", "21"])
    if tool == "maven":
        lines = [f"FROM maven:3.9-eclipse-temurin-{jdk} AS build", "WORKDIR /build", "COPY pom.xml .",
                 r.choice(["RUN mvn -B dependency:go-offline",
                           "RUN --mount=type=cache,target=/root/.m2 mvn -B dependency:go-offline"]),
                 "COPY src ./src", "RUN mvn -B -DskipTests package", "",
                 f"FROM eclipse-temurin:{jdk}-jre{r.choice(['', '-alpine', '-jammy'])}",
                 "COPY --from=build /build/target/*.jar /app/app.jar"]
    else:
        lines = [f"FROM gradle:8-jdk{jdk} AS build", "WORKDIR /home/gradle/project", "COPY --chown=gradle . .",
                 "RUN gradle build --no-daemon -x test", "",
                 f"FROM eclipse-temurin:{jdk}-jre", "RUN mkdir /app",
                 "COPY --from=build /home/gradle/project/build/libs/*.jar /app/app.jar"]
    if r.random() < 0.5:
        lines.append('ENV JAVA_OPTS="-XX:MaxRAMPercentage=75 -XX:+UseContainerSupport"')
    lines.append("EXPOSE 8080")
    lines.append(r.choice(['ENTRYPOINT ["java", "-jar", "/app/app.jar"]', "ENTRYPOINT java $JAVA_OPTS -jar /app/app.jar",
                           'CMD ["java", "-XX:+UseSerialGC", "-jar", "/app/app.jar"]']))
    return "\n".join(lines) + "\n"


def _alpine(r: random.Random) -> str:
    pkgs = " ".join(r.sample(["curl", "bash", "ca-certificates", "tzdata", "openssl", "jq", "git",
                              "python3", "py3-pip", "nginx", "su-exec", "tini"], 4))
    lines = [f"FROM alpine:{r.choice(['3.18', '3.19', '3.20', 'latest', 'edge'])}",
             f"LABEL maintainer=\"ops{r.randint(1, 99)}@example.com\" org.opencontainers.image.source=\"https://example.com/repo\""]
    lines.append(r.choice([f"RUN apk add --no-cache {pkgs}", f"RUN apk update && apk add {pkgs}",
                           f"RUN apk add --update {pkgs} && rm -rf /var/cache/apk/*",
                           f"RUN apk upgrade && apk add --no-cache {pkgs}"]))
    if r.random() < 0.5:
        lines += ["RUN addgroup -S app && adduser -S app -G app", "USER app"]
    if r.random() < 0.4:
        lines += ["RUN wget -qO /usr/local/bin/yq https://github.com/mikefarah/yq/releases/download/v4.40.5/yq_linux_amd64 \\",
                  "    && chmod +x /usr/local/bin/yq"]
    lines.append(r.choice(["COPY entrypoint.sh /usr/local/bin/", "ADD entrypoint.sh /usr/local/bin/entrypoint.sh",
                           "COPY --chmod=755 entrypoint.sh /usr/local/bin/"]))
    if r.random() < 0.5:
        lines.append("RUN chmod +x /usr/local/bin/entrypoint.sh")
    lines.append(r.choice(['ENTRYPOINT ["/sbin/tini", "--", "entrypoint.sh"]', "ENTRYPOINT entrypoint.sh",
                           'CMD ["entrypoint.sh"]']))
    return "\n".join(lines) + "\n"


def _debian(r: random.Random) -> str:
    base = r.choice(["debian:bookworm", "debian:bookworm-slim", "ubuntu:22.04", "ubuntu:24.04", "ubuntu:latest",
                     "ubuntu"])
    pkgs = r.sample(["curl", "wget", "ca-certificates", "gnupg", "unzip", "git", "jq", "vim", "less",
                     "python3", "python3-pip", "openjdk-17-jre-headless", "nginx", "supervisor"], 5)
    lines = [f"FROM {base}", "ENV DEBIAN_FRONTEND=noninteractive" if r.random() < 0.5
             else "ARG DEBIAN_FRONTEND=noninteractive"]
    style = r.randrange(4)
    if style == 0:
        lines += ["RUN apt-get update", f"RUN apt-get install -y {' '.join(pkgs)}"]
    elif style == 1:
        lines += ["RUN apt-get update && apt-get install -y --no-install-recommends \\"]
        lines += [f"        {p} \\" for p in pkgs[:-1]] + [f"        {pkgs[-1]} \\",
                                                              "    && rm -rf /var/lib/apt/lists/*"]
    elif style == 2:
        lines += [f"RUN apt update && apt install -y {' '.join(pkgs)}", "RUN apt-get upgrade -y"]
    else:
        lines += ["RUN <<EOF", "set -eux", "apt-get update",
                  f"apt-get install -y --no-install-recommends {' '.join(pkgs)}",
                  "rm -rf /var/lib/apt/lists/*", "EOF"]
    if r.random() < 0.5:
        lines += ["RUN curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \\",
                  "    && apt-get install -y nodejs"]
    if r.random() < 0.4:
        lines += ["COPY <<EOF /etc/nginx/conf.d/default.conf", "server {", "    listen 8080;",
                  "    location / { root /srv/www; }", "}", "EOF"]
    if r.random() < 0.5:
        lines.append("RUN cd /tmp && wget https://example.com/tool.tar.gz && tar xzf tool.tar.gz && mv tool /usr/local/bin/")
    lines.append(r.choice(["WORKDIR /srv", "RUN mkdir -p /srv && cd /srv"]))
    lines.append(r.choice(["COPY . /srv", "ADD https://example.com/config.json /srv/config.json",
                           "COPY --chown=www-data:www-data site/ /srv/www/"]))
    lines.append(r.choice(['CMD ["nginx", "-g", "daemon off;"]', "CMD [\"/usr/bin/supervisord\"]",
                           "CMD bash -c 'service nginx start && tail -f /dev/null'"]))
    return "\n".join(lines) + "\n"


def _rpm(r: random.Random) -> str:
    base = r.choice(["centos:7", "rockylinux:9", "fedora:40", "amazonlinux:2023", "registry.access.redhat.com/ubi9/ubi",
                     "registry.access.redhat.com/ubi9/ubi-minimal", "almalinux:9"])
    mgr = "microdnf" if "minimal" in base else r.choice(["yum", "dnf"])
    pkgs = " ".join(r.sample(["httpd", "python3", "git", "tar", "gzip", "shadow-utils", "procps-ng", "java-17-openjdk"], 3))
    lines = [f"FROM {base}"]
    lines.append(r.choice([f"RUN {mgr} install -y {pkgs}", f"RUN {mgr} install -y {pkgs} && {mgr} clean all",
                           f"RUN {mgr} -y update && {mgr} -y install {pkgs} && rm -rf /var/cache/{mgr}",
                           f"RUN {mgr} install {pkgs}"]))
    if r.random() < 0.5:
        lines.append("RUN useradd -r -u 1001 -g 0 app")
    lines += ["COPY app /opt/app", "WORKDIR /opt/app"]
    if r.random() < 0.5:
        lines.append("RUN chmod -R g+rwX /opt/app")
    lines.append("USER 1001" if r.random() < 0.6 else "USER root")
    lines.append(r.choice(['CMD ["/opt/app/run.sh"]', "CMD /opt/app/run.sh", 'CMD ["httpd", "-DFOREGROUND"]']))
    return "\n".join(lines) + "\n"


def _ruby_php(r: random.Random) -> str:
    if r.random() < 0.5:
        lines = [f"FROM ruby:{r.choice(['3.2', '3.3'])}{r.choice(['', '-slim', '-alpine'])}", "WORKDIR /app",
                 "COPY Gemfile Gemfile.lock ./",
                 r.choice(["RUN bundle install", "RUN bundle config set without 'development test' && bundle install",
                           "RUN gem install bundler && bundle install --jobs 4"]),
                 "COPY . .", 'CMD ["bundle", "exec", "puma", "-C", "config/puma.rb"]']
    else:
        lines = [f"FROM php:{r.choice(['8.2', '8.3'])}-{r.choice(['fpm', 'apache', 'cli'])}",
                 "RUN apt-get update && apt-get install -y libzip-dev unzip && docker-php-ext-install zip pdo_mysql",
                 "COPY --from=composer:2 /usr/bin/composer /usr/bin/composer", "WORKDIR /var/www/html",
                 "COPY composer.json composer.lock ./",
                 r.choice(["RUN composer install", "RUN composer install --no-dev --optimize-autoloader"]),
                 "COPY . .", "RUN chown -R www-data:www-data /var/www/html"]
    return "\n".join(lines) + "\n"


def _mixed(r: random.Random) -> str:
    """Larger multi-stage files with heredocs, ONBUILD, SHELL, ARGs and curl|sh."""
    lines = ["# syntax=docker/dockerfile:1.7", f"ARG BASE=debian:{r.choice(['bookworm', 'bullseye'])}-slim",
             "ARG VERSION=1.0.0", "", "FROM ${BASE} AS base",
             "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \\",
             "    && rm -rf /var/lib/apt/lists/*", "", "FROM base AS tools",
             "RUN curl -fsSL https://sh.rustup.rs | sh -s -- -y",
             "RUN --mount=type=cache,target=/var/cache/apt apt-get update && apt-get install -y build-essential",
             "RUN <<EOT bash", "  set -euo pipefail", "  mkdir -p /opt/build", "  cd /opt/build",
             "  curl -fsSLO https://example.com/src-${VERSION}.tar.gz", "  tar xzf src-${VERSION}.tar.gz",
             "  make -C src-${VERSION} install PREFIX=/opt/out", "EOT", "", "FROM base"]
    if r.random() < 0.5:
        lines.append('SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    lines += ["COPY --from=tools /opt/out /usr/local",
              "RUN curl -fsSL https://get.example.com/install.sh | bash",
              "COPY <<-EOF /usr/local/bin/start", "\t#!/bin/sh", "\texec /usr/local/bin/server \"$@\"", "\tEOF",
              "RUN chmod 0755 /usr/local/bin/start", "ENV PATH=/usr/local/bin:$PATH LANG=C.UTF-8"]
    if r.random() < 0.3:
        lines += ["ONBUILD COPY . /app", "ONBUILD RUN pip install -r /app/requirements.txt"]
    for i in range(r.randint(0, 6)):
        lines.append(f"LABEL com.example.layer{i}=\"value {i}\"")
    lines += ["VOLUME /data", "STOPSIGNAL SIGTERM", 'ENTRYPOINT ["start"]', 'CMD ["--port", "8080"]']
    return "\n".join(lines) + "\n"


FAMILIES = (_python, _node, _go, _java, _alpine, _debian, _rpm, _ruby_php, _mixed)

# a small build context per family, so that rules which read the context (.dockerignore,
# what `COPY . .` takes in) do the work they do in a real repository
_CONTEXT = {
    "python": {"requirements.txt": "flask==3.0.0\ngunicorn==21.2.0\npsycopg[binary]==3.1.12\n",
               "app.py": "from flask import Flask\napp = Flask(__name__)\n", "src/__init__.py": "",
               "tests/test_app.py": "def test_ok():\n    assert True\n", "README.md": "# service\n"},
    "node": {"package.json": '{"name": "svc", "version": "1.0.0", "scripts": {"start": "node dist/server.js"}}\n',
             "package-lock.json": '{"lockfileVersion": 3}\n', "yarn.lock": "# yarn lockfile v1\n",
             "src/server.js": "require('http').createServer().listen(3000)\n"},
    "go": {"go.mod": "module example.com/svc\n\ngo 1.22\n", "go.sum": "", "main.go": "package main\n",
           "cmd/app/main.go": "package main\n\nfunc main() {}\n"},
    "java": {"pom.xml": "<project/>\n", "build.gradle": "plugins { id 'java' }\n",
             "src/main/java/App.java": "class App {}\n"},
    "alpine": {"entrypoint.sh": "#!/bin/sh\nexec \"$@\"\n"},
    "debian": {"site/index.html": "<h1>hi</h1>\n", "README.md": "# site\n"},
    "rpm": {"app/run.sh": "#!/bin/sh\nexec httpd -DFOREGROUND\n"},
    "ruby_php": {"Gemfile": "source 'https://rubygems.org'\n", "Gemfile.lock": "GEM\n", "config/puma.rb": "",
                 "composer.json": "{}\n", "composer.lock": "{}\n", "index.php": "<?php echo 1;\n"},
    "mixed": {"README.md": "# tools\n"},
}
_DOCKERIGNORE = ".git\n**/__pycache__\n*.pyc\nnode_modules\n.env\n*.pem\n"


def _write(root: str, rel: str, text: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_corpus(root: str, n: int = 200, seed: int = 20240601) -> tuple:
    """Write the corpus below ``root``: ``typical/`` and ``services/NNN-family/``, each a
    Dockerfile in a small build context. Returns (typical path, [n batch paths]), relative."""
    r = random.Random(seed)
    _write(root, "typical/Dockerfile", TYPICAL)
    for rel, text in _CONTEXT["python"].items():
        _write(root, os.path.join("typical", rel), text)
    _write(root, "typical/.dockerignore", _DOCKERIGNORE)
    batch = []
    for i in range(n):
        fam = FAMILIES[i % len(FAMILIES)]
        family = fam.__name__.strip("_")
        d = os.path.join("services", f"{i:03d}-{family}")
        _write(root, os.path.join(d, "Dockerfile"), fam(r))
        for rel, text in _CONTEXT[family].items():
            _write(root, os.path.join(d, rel), text)
        roll = r.random()
        if roll < 0.6:
            _write(root, os.path.join(d, ".dockerignore"), _DOCKERIGNORE)
        elif roll < 0.7:  # the mistake some repositories make
            _write(root, os.path.join(d, ".env"), "DATABASE_URL=postgres://app:hunter2@db/app\n")
        batch.append(os.path.join(d, "Dockerfile"))
    return os.path.join("typical", "Dockerfile"), batch


# --------------------------------------------------------------------------------------
# running

def run_once(argv: list, cwd: str, env: dict) -> tuple:
    """(wall seconds, CPU seconds, peak RSS in KiB, exit code) of one whole process.

    The RSS from rusage is only an upper bound: Linux carries the high-water mark of the
    forked copy of this (larger) benchmark process across exec; see :func:`peak_rss`."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    rss = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss // 1024
    return wall, usage.ru_utime + usage.ru_stime, rss, p.returncode


TIME = "/usr/bin/time"


def peak_rss(argv: list, cwd: str, env: dict, tmp: str):
    """Peak RSS in KiB measured by /usr/bin/time (a small process forks the tool, so the number is
    the tool's own), or None when /usr/bin/time is not installed."""
    if not os.access(TIME, os.X_OK):
        return None
    out = os.path.join(tmp, "rss.txt")
    subprocess.run([TIME, "-f", "%M", "-o", out, *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(out, encoding="utf-8") as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def check_run(name: str, argv: list, cwd: str, env: dict) -> str:
    """Warm-up run with output captured; exit 0/1 are fine (1 = findings), anything else aborts."""
    p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"{name} failed (exit {p.returncode}): {' '.join(argv[:6])} ...\n{p.stderr[-2000:]}")
    return p.stdout


def editable_finder_active(python: str) -> bool:
    """True when site imports setuptools' editable-install finder (a per-start import cost)."""
    code = "import sys; print(any(m.startswith('__editable__') for m in sys.modules))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout
    return out.strip() == "True"


# The template pip (distlib) writes for console scripts; a clean install starts through it.
_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {func}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""


def entry_point() -> tuple:
    """(module, function) of the ``imagelint`` console script, from setup.cfg."""
    import configparser
    cp = configparser.ConfigParser()
    cp.read(os.path.join(REPO, "setup.cfg"))
    for line in cp.get("options.entry_points", "console_scripts").splitlines():
        name, _, target = line.partition("=")
        if name.strip() == "imagelint":
            mod, _, func = target.strip().partition(":")
            return mod, func
    raise SystemExit("setup.cfg has no imagelint console script")


def make_clean_install(tmp: str, entry: tuple = None) -> str:
    """A venv whose site-packages holds imagelint as a wheel would install it (the package plus
    rules/ as imagelint/builtin_rules) and a .pth with this environment's site-packages for the
    dependencies (path lines only: that directory's own .pth files, the editable hook among them,
    are not run). Returns the console script path. ``entry``: (module, function) instead of
    setup.cfg's, e.g. the click app itself to measure what the fast path saves."""
    venv = os.path.join(tmp, "venv")
    script = os.path.join(venv, "bin", "imagelint" if entry is None else "imagelint-" + entry[0])
    if os.path.isdir(venv):  # a second entry point in the same venv
        _write_script(script, os.path.join(venv, "bin", "python"), entry)
        return script
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(REPO, "imagelint"), os.path.join(site, "imagelint"), ignore=ignore)
    shutil.copytree(os.path.join(REPO, "rules"), os.path.join(site, "imagelint", "builtin_rules"), ignore=ignore)
    with open(os.path.join(site, "zz-deps.pth"), "w", encoding="utf-8") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "compileall", "-q", os.path.join(site, "imagelint")], check=True)
    _write_script(script, py, entry)
    return script


def _write_script(script: str, python: str, entry: tuple = None) -> None:
    mod, func = entry or entry_point()
    with open(script, "w", encoding="utf-8") as f:
        f.write(_SCRIPT.format(python=python, module=mod, func=func))
    os.chmod(script, 0o755)


def median_ms(xs: list) -> float:
    return statistics.median(xs) * 1000.0


def bench(tools: dict, cases: dict, runs: int, cwd: str, env: dict, tmp: str) -> list:
    """Time every tool on every case, interleaved; returns result rows."""
    rows = []
    for case, args in cases.items():
        samples = {}
        for name, cmd in tools.items():
            out = check_run(name, cmd + args, cwd, env)  # warm-up (also fills imagelint's rule cache)
            samples[name] = ([], [], [], out.count("\n"))
        for _ in range(runs):
            for name, cmd in tools.items():
                wall, cpu, rss, _ = run_once(cmd + args, cwd, env)
                samples[name][0].append(wall)
                samples[name][1].append(cpu)
                samples[name][2].append(rss)
        for name, (walls, cpus, rsss, out_lines) in samples.items():
            measured = [peak_rss(tools[name] + args, cwd, env, tmp) for _ in range(3)]
            rss = max(measured) if None not in measured else max(rsss)
            rows.append({"case": case, "tool": name, "median_ms": round(median_ms(walls), 2),
                         "min_ms": round(min(walls) * 1000, 2), "max_ms": round(max(walls) * 1000, 2),
                         "cpu_median_ms": round(median_ms(cpus), 2), "peak_rss_kib": rss,
                         "rss_method": "/usr/bin/time" if None not in measured else "rusage (upper bound)",
                         "runs": runs, "output_lines": out_lines})
    return rows


def profile(script: str, path: str, cwd: str, env: dict, top: int = 25) -> None:
    """``python -X importtime`` of the single-file case: the costliest imports (cumulative)."""
    with open(script, encoding="utf-8") as f:
        python = f.readline()[2:].strip()
    p = subprocess.run([python, "-X", "importtime", script, "lint", path], cwd=cwd, env=env,
                       capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        rows.append((int(cum_us), int(self_us), name.rstrip()[1:]))  # depth = 2 spaces per level
    total = sum(c for c, _, n in rows if not n.startswith(" "))
    print(f"\nimports of `imagelint lint {path}` ({script}): {total / 1000:.1f} ms in top-level imports")
    print("(rule check modules, loaded with importlib.import_module, are not in -X importtime's log)")
    print(f"{'cumulative ms':>14} {'self ms':>8}  module")
    for cum, self_, name in sorted(rows, reverse=True)[:top]:
        print(f"{cum / 1000:14.1f} {self_ / 1000:8.1f}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="timed runs per tool and case (default 15)")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    ap.add_argument("--profile", action="store_true", help="print python -X importtime top imports "
                    "for the single-file case and exit")
    ap.add_argument("--hadolint", default=os.path.join(os.path.dirname(sys.executable), "hadolint"))
    ap.add_argument("--imagelint", default=os.path.join(os.path.dirname(sys.executable), "imagelint"))
    ap.add_argument("--no-clean-install", action="store_true",
                    help="do not also measure a clean (non-editable) install when the installed one is editable")
    ap.add_argument("--compare-click", action="store_true",
                    help="also time the click app as the entry point (what the fast lint path saves)")
    ns = ap.parse_args()
    for tool in (ns.hadolint, ns.imagelint):
        if not os.access(tool, os.X_OK):
            sys.exit(f"not found or not executable: {tool}")

    tmp = tempfile.mkdtemp(prefix="imagelint-bench-")
    try:
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        single, batch = write_corpus(work)
        env = dict(os.environ)
        # no user config for either tool; a private cache (imagelint's rule cache is filled by warm-up)
        env["XDG_CONFIG_HOME"] = os.path.join(tmp, "config")
        env["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        env["HOME"] = os.path.join(tmp, "home")
        for d in ("config", "cache", "home"):
            os.makedirs(os.path.join(tmp, d))
        env.pop("NO_COLOR", None)
        # as on a user's machine: byte-code caches are written (by the warm-up run) and used
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        with open(ns.imagelint, encoding="utf-8") as f:
            python = f.readline()[2:].strip()
        tools = {"imagelint": [ns.imagelint]}
        editable = editable_finder_active(python)
        if (editable or ns.compare_click) and not ns.no_clean_install:
            tools["imagelint (clean install)"] = [make_clean_install(tmp)]
        if ns.compare_click:
            tools["imagelint (clean, via click)"] = [make_clean_install(tmp, ("imagelint.cli", "main"))]
        tools["hadolint"] = [ns.hadolint]

        if ns.profile:
            for name, cmd in tools.items():
                if name.startswith("imagelint"):
                    check_run(name, cmd + ["lint", single], work, env)
                    profile(cmd[0], single, work, env)
            return

        cases = {"single": [single], "batch200": batch}
        tool_args = {n: (c + ["lint"] if n.startswith("imagelint") else c) for n, c in tools.items()}
        load0 = os.getloadavg()[0]
        rows = bench(tool_args, cases, ns.runs, work, env, tmp)
        load = (load0, os.getloadavg()[0])
        report(rows, ns.runs, editable, load)
        if ns.json:
            with open(ns.json, "w", encoding="utf-8") as f:
                json.dump({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "runs": ns.runs,
                           "load_average": load, "editable_install": editable, "results": rows}, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform()}


def report(rows: list, runs: int, editable: bool, load: tuple) -> None:
    by = {(r["case"], r["tool"]): r for r in rows}
    m = machine()
    print(f"{m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; median of {runs} runs per tool, "
          "one whole process each")
    if load[1] > 0.5 * (m["nproc"] or 1):
        print(f"warning: load average was {load[0]:.1f} -> {load[1]:.1f} on {m['nproc']} CPUs; wall times are "
              "inflated, CPU times less so")
    header = (f"{'case':<9} {'imagelint':<18} {'imagelint ms':>12} {'hadolint ms':>11} {'ratio':>6} "
              f"{'target':>7} {'result':>6}   {'CPU ms imagelint/hadolint':>25} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for case in ("single", "batch200"):
        had = by[(case, "hadolint")]
        for (c, tool), r in by.items():
            if c != case or tool == "hadolint":
                continue
            ratio = r["median_ms"] / had["median_ms"]
            target = TARGETS[case]
            verdict = "PASS" if ratio <= target else "MISS"
            label = "installed" if tool == "imagelint" else tool[len("imagelint ("):-1]
            cpu = f"{r['cpu_median_ms']:.1f} / {had['cpu_median_ms']:.1f}"
            print(f"{case:<9} {label:<18} {r['median_ms']:12.1f} {had['median_ms']:11.1f} {ratio:6.2f} "
                  f"{'<= ' + str(target):>7} {verdict:>6}   {cpu:>25} "
                  f"{r['cpu_median_ms'] / had['cpu_median_ms']:6.2f}")
    print()
    print(f"{'case':<9} {'tool':<30} {'peak RSS MiB':>12} {'min ms':>8} {'max ms':>8} {'output lines':>13}")
    for r in rows:
        print(f"{r['case']:<9} {r['tool']:<30} {r['peak_rss_kib'] / 1024:12.1f} {r['min_ms']:8.1f} "
              f"{r['max_ms']:8.1f} {r['output_lines']:13}")
    if editable:
        print("\nnote: the installed imagelint is an editable install; setuptools' import hook for it adds "
              "~10 ms to every Python start in this environment. 'clean install' is how a wheel install runs.")


if __name__ == "__main__":
    main()
