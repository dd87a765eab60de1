# One image for the pipeline and the dashboard; docker-compose.yml picks the command.
#   docker compose build            (or: docker build -t hipstride:local .)
FROM python:3.11-slim

# The container user gets your uid/gid (HIPSTRIDE_UID/GID in .env), so the files that
# `hipstride admin` writes on the host with mode 0600 (deploy/site/dashboard/accounts.json)
# stay private yet readable by the dashboard.
ARG UID=1000
ARG GID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/hipstride
COPY pyproject.toml setup.py README.md ./
COPY hipstride ./hipstride
COPY edge ./edge
COPY pipeline ./pipeline
COPY dashboard ./dashboard
RUN pip install ".[pipeline,dashboard]"

RUN groupadd --gid "${GID}" hipstride \
    && useradd --uid "${UID}" --gid "${GID}" --create-home --shell /usr/sbin/nologin hipstride \
    && mkdir -p /var/lib/hipstride /etc/hipstride \
    && chown hipstride:hipstride /var/lib/hipstride
USER hipstride
WORKDIR /var/lib/hipstride

EXPOSE 8501
CMD ["hipstride", "--help"]
