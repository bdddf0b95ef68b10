"""The production store: Apache Cassandra 4.x/5.x through the DataStax Python driver."""
