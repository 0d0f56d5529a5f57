DROP TABLE cluster_templates;
