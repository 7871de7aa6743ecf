"""`python -m flightops.serving`: run the service (what the serving container runs)."""

import argparse

from flightops.settings import load_environment


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flightops.serving", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    load_environment()  # before MLflow is imported: it reads its telemetry switch at import
    from flightops.serving.app import serve

    serve(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
