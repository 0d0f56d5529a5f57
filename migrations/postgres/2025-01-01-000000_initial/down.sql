DROP TRIGGER preseed_versions_immutable ON preseed_versions;
DROP FUNCTION preseed_versions_immutable();
DROP TABLE preseed_versions;
DROP TABLE preseeds;
DROP TABLE nodes;
DROP TABLE settings;
DROP TABLE license_keys;
DROP TABLE clusters;
