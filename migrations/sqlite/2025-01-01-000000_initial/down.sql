DROP TRIGGER preseed_versions_no_delete;
DROP TRIGGER preseed_versions_no_update;
DROP TABLE preseed_versions;
DROP TABLE preseeds;
DROP TABLE nodes;
DROP TABLE settings;
DROP TABLE license_keys;
DROP TABLE clusters;
