# billrun's API and worker for docker-compose.yml (the same package `make install`
# installs; WeasyPrint needs Pango to render invoices).
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
ENV BILLRUN_HOME=/data
ENTRYPOINT ["billrun"]
