DROP TABLE cluster_enrollments;
