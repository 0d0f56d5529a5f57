ALTER TABLE clusters DROP COLUMN removed;
