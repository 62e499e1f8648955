DROP TABLE IF EXISTS offline_store_message;
DROP TABLE IF EXISTS offline_store_queue;
