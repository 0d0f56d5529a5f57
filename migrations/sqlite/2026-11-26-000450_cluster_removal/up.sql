-- A removed cluster keeps its row, hidden, while history names it (license keys it validated,
-- preseed versions it shipped, nodes enlisted on it): those rows are immutable or the
-- operator's, and a foreign key must not make removal fail. It comes back, first seen anew,
-- if the same id registers again.
ALTER TABLE clusters ADD COLUMN removed BOOLEAN NOT NULL DEFAULT 0;
