-- The OLTP schema of the `sales` database (MySQL / MariaDB). Applied by `ecomlake load-capstone`
-- and the generator; every statement is idempotent.
--
-- sales_data keeps the course's columns (product_id, customer_id, price, quantity, timestamp)
-- so the course's oltpdata.csv loads unchanged, plus what incremental extraction needs: an
-- auto-increment key (`id`, also the JDBC partition column) and `updated_at`, maintained by the
-- server on every change (the watermark for corrections).
CREATE TABLE IF NOT EXISTS sales_data (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  product_id   INT            NULL,
  customer_id  INT            NULL,
  price        DECIMAL(12,2)  NULL,
  quantity     INT            NULL,
  `timestamp`  DATETIME       NULL,
  updated_at   TIMESTAMP(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY ix_sales_data_timestamp (`timestamp`),
  KEY ix_sales_data_updated_at (updated_at),
  KEY ix_sales_data_product (product_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Customers: one row per customer; `country` is one of the course's DimCountry names. A
-- customer who moves country is an UPDATE (updated_at moves), which silver keeps as history.
CREATE TABLE IF NOT EXISTS customers (
  customer_id  INT            NOT NULL,
  name         VARCHAR(100)   NOT NULL,
  email        VARCHAR(200)   NOT NULL,
  country      VARCHAR(64)    NULL,
  created_at   DATETIME       NOT NULL,
  updated_at   TIMESTAMP(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (customer_id),
  KEY ix_customers_updated_at (updated_at),
  KEY ix_customers_country (country)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Stock on hand per product and warehouse.
CREATE TABLE IF NOT EXISTS inventory (
  product_id       INT          NOT NULL,
  warehouse_id     SMALLINT     NOT NULL,
  quantity_on_hand INT          NOT NULL,
  updated_at       TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (product_id, warehouse_id),
  KEY ix_inventory_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What the generator made (`ecomlake generate`): the seed and sizes the change batches build
-- on. One row; replaced by each generate, removed by nothing else.
CREATE TABLE IF NOT EXISTS generator_state (
  id            TINYINT      NOT NULL DEFAULT 1,
  seed          BIGINT       NOT NULL,
  scale         DOUBLE       NOT NULL,
  n_sales       BIGINT       NOT NULL,
  n_customers   INT          NOT NULL,
  n_products    INT          NOT NULL,
  n_warehouses  SMALLINT     NOT NULL,
  generated_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Every record a change batch (`ecomlake changes --batch K`) touched, so tests can follow each
-- one through bronze, silver, quarantine and gold. record_key: the sales id, customer_id,
-- product_id, 'product_id:warehouse_id', or the MongoDB _id as hex. kind: insert, update,
-- delete (hard), or bad (inserted, and breaks exactly the quality rule named in `rule`).
-- detail: for updates, the field(s) changed (e.g. 'quantity,price', 'country', 'category');
-- for inserts of new products, the new document field they introduce.
CREATE TABLE IF NOT EXISTS change_manifest (
  batch       INT          NOT NULL,
  system      VARCHAR(8)   NOT NULL,
  entity      VARCHAR(32)  NOT NULL,
  record_key  VARCHAR(64)  NOT NULL,
  kind        VARCHAR(16)  NOT NULL,
  rule        VARCHAR(64)  NULL,
  detail      VARCHAR(64)  NULL,
  PRIMARY KEY (batch, system, entity, record_key, kind),
  KEY ix_change_manifest_kind (kind, rule)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The change batches applied, in order, once each.
CREATE TABLE IF NOT EXISTS applied_batches (
  batch       INT          NOT NULL,
  applied_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  seed        BIGINT       NOT NULL,
  counts      TEXT         NOT NULL,
  PRIMARY KEY (batch)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
