# psmesh services (registry, capture, processors, sinks, page) for docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY psmesh ./psmesh
COPY streams ./streams
COPY processors ./processors
COPY sinks ./sinks
COPY schemas ./schemas
COPY topology.yaml ./
# In place (-e): the code reads schemas/ and topology.yaml beside its packages (sinks/records.py,
# processors/codec.py, psmesh/sources.py), which a copy into site-packages would lose.
RUN pip install --no-cache-dir -e .
ENV PSMESH_KAFKA_BOOTSTRAP=kafka:29092 \
    PSMESH_PG_HOST=postgres \
    PSMESH_PG_PORT=5432 \
    PSMESH_REGISTRY_URL=http://registry:8081
