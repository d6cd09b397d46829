"""ecomlake: the ecommerce lakehouse (MySQL + MongoDB -> Delta bronze/silver/gold -> PostgreSQL / DB2).

The package lives in lib/ecomlake (src layout). Runtime pins are exact where versions must
match each other (Spark <-> Delta <-> connector jars in stack/jars/pom.xml); see the comments.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # pyspark must equal the Spark version the Delta jar was built for: delta-spark_4.2_2.13
    # 4.4.0 (stack/jars/pom.xml) is compiled against Spark 4.2.0, and a Delta jar built for
    # another Spark patch can fail with NoSuchMethodError.
    "pyspark==4.2.0",
    # The Python half of Delta must equal the jar's version. 4.4.1 is on PyPI but its jar is
    # not on Maven Central (404 on 2026-11-25), so both halves are pinned to 4.4.0.
    "delta-spark==4.4.0",
    # Spark 4.2 does not support pandas 3.
    "pandas>=2.2,<3",
    "pyarrow>=15",
    "pyyaml>=6",
    "pymongo>=4.10,<5",
    "mysql-connector-python>=9",
    "psycopg2-binary>=2.9",
    "ibm-db>=3.2",
    # ecomlake.ops.bi (`ecomlake bi ...`, tests/integration/test_bi.py): Superset's REST API
    # over requests (Rison query strings by prison), and the browser check through Selenium
    # driving Debian's chromium + chromium-driver (apt, stack/superset/install.sh; Selenium
    # is given both paths, so it downloads nothing).
    "requests>=2.32,<3",
    "prison==0.2.1",
    "selenium==4.51.0",
]

# What executing notebooks/ needs: a kernel, the notebook format and its runner, the plots.
NOTEBOOK_RUN = ["ipykernel==7.4.0", "nbformat==5.11.1", "nbclient==0.11.0", "matplotlib==3.11.2"]

setup(
    name="ecomlake",
    version="0.1.0",
    description="Spark-first ecommerce lakehouse: MySQL and MongoDB to Delta bronze/silver/gold, published to PostgreSQL and DB2",
    python_requires="==3.11.*",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"ecomlake": ["sql/*.sql"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # nbclient runs notebooks/ in a real kernel (tests/e2e/test_notebook.py), so the test
        # extra carries what the notebook's kernel imports.
        "test": ["pytest>=8", "chispa==0.12.0", *NOTEBOOK_RUN],
        # `make notebook`: the same, plus Jupyter Lab to open and edit them.
        "notebook": [*NOTEBOOK_RUN, "jupyterlab==4.6.6"],
    },
    entry_points={"console_scripts": ["ecomlake=ecomlake.ops.cli:main"]},
)
