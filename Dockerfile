FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY schemas schemas
COPY streams streams
COPY agents agents
COPY trainer trainer
COPY models models
COPY rlsizer rlsizer
# PIP_EXTRA_INDEX_URL may point at a CPU-only torch wheel index to keep the image small.
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install --no-cache-dir . && useradd -r -u 10001 rlsizer && mkdir -p /var/lib/rlsizer && chown rlsizer /var/lib/rlsizer
USER rlsizer
ENV RLSIZER_DATA_DIR=/var/lib/rlsizer
ENTRYPOINT []
CMD ["rlsizer", "worker"]
