module github.com/artcafe-ai/pubsub/scripts

go 1.26.0

require github.com/artcafe-ai/pubsub/contracts v0.0.0

replace github.com/artcafe-ai/pubsub/contracts => ../contracts
