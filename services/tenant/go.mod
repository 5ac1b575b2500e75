module github.com/artcafe-ai/pubsub/services/tenant

go 1.26.0

require (
	github.com/artcafe-ai/pubsub/contracts v0.0.0
	github.com/artcafe-ai/pubsub/services/kit v0.0.0
)

replace (
	github.com/artcafe-ai/pubsub/contracts => ../../contracts
	github.com/artcafe-ai/pubsub/services/kit => ../kit
)
