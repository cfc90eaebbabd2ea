// Package broker connects tideline to Kafka: the lanes' topic names, client
// options shared by every producer and consumer, topic creation, and the
// embedded broker (franz-go's kfake) that `tideline dev` and the fast tests
// run in-process so no Kafka install is needed.
package broker
