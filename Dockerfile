FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sluicegate sluicegate
COPY registry registry
COPY gateway gateway
COPY cdc cdc
COPY materializer materializer
COPY migrations migrations
RUN pip install --no-cache-dir '.[postgres]'
ENV TZ=UTC
EXPOSE 8080
CMD ["sluicegate", "serve", "--host", "0.0.0.0"]
