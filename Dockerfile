# CPU image: the package and the embedded models, installed with the README's set-up (make setup).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mint-distill
COPY . .
ENV MINT_DISTILL_HOME=/opt/mint-distill/.cache/mint-distill \
    MINT_DISTILL_DATA_DIR=/data \
    HF_HUB_OFFLINE=1
RUN make setup VENV=/opt/venv TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENTRYPOINT ["/opt/venv/bin/mint-distill"]
CMD ["--help"]
