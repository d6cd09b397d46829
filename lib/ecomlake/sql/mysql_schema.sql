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
