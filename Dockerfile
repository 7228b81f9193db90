# kehoach on the Prefect image it is tested with (prefect 3.9.1, Python 3.11), as a user
# without privileges. Configuration and secrets come only from the environment.
FROM prefecthq/prefect:3.9.1-python3.11
WORKDIR /app
COPY pyproject.toml README.md ./
COPY approvals ./approvals
COPY notifications ./notifications
COPY flows ./flows
COPY service ./service
COPY plans ./plans
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 10001 kehoach \
    && mkdir -p /data && chown kehoach /data
USER kehoach
ENV KEHOACH_ENVIRONMENT=production KEHOACH_DATA_DIR=/data KEHOACH_PLAN_FILE=/app/plans/lang-son.yaml \
    PYTHONUNBUFFERED=1
ENTRYPOINT []
CMD ["kehoach", "web"]
