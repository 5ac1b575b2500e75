#!/usr/bin/env bash
# Deploy ArtCafe PubSub to AWS with CloudFormation (see infra/README.md).
#
#   infra/deploy.sh --env dev --certificate-arn arn:aws:acm:... [options]
#
# Options (the original's, plus what this deployment needs):
#   --env ENV                   environment name (dev, staging, prod)         (required)
#   --region REGION             AWS region                                    (default: us-east-1)
#   --stack-name NAME           stack name prefix                             (default: artcafe-pubsub)
#   --nats-instance-type TYPE   EC2 type of the three NATS nodes              (default: t3.small)
#   --api-instance-type TYPE    EC2 type of the ECS container instances       (default: t3.small)
#   --api-instance-count N      container instances                           (default: 2)
#   --certificate-arn ARN       ACM certificate of the public HTTPS endpoint  (required)
#   --replicas N                replicas of every component                   (default: 2)
#   --image-tag TAG             image tag                                     (default: git short sha)
#   --skip-package              do not build and push images (infrastructure-only update)
# Needs: aws CLI v2 with credentials, docker (unless --skip-package), go, openssl, jq.
set -euo pipefail

ENV="" REGION="us-east-1" STACK="artcafe-pubsub" NATS_TYPE="t3.small" API_TYPE="t3.small" API_COUNT=2
CERT_ARN="" REPLICAS=2 TAG="" SKIP_PACKAGE=0
die() { echo "deploy.sh: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
	case "$1" in
	--env) ENV=$2; shift 2 ;;
	--region) REGION=$2; shift 2 ;;
	--stack-name) STACK=$2; shift 2 ;;
	--nats-instance-type) NATS_TYPE=$2; shift 2 ;;
	--api-instance-type) API_TYPE=$2; shift 2 ;;
	--api-instance-count) API_COUNT=$2; shift 2 ;;
	--certificate-arn) CERT_ARN=$2; shift 2 ;;
	--replicas) REPLICAS=$2; shift 2 ;;
	--image-tag) TAG=$2; shift 2 ;;
	--skip-package) SKIP_PACKAGE=1; shift ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) die "unknown option $1 (--help)" ;;
	esac
done
[[ -n "$ENV" ]] || die "--env is required"
[[ "$ENV" =~ ^[a-z0-9-]+$ ]] || die "--env: lower-case letters, digits and dashes"
[[ -n "$CERT_ARN" ]] || die "--certificate-arn is required (TLS on the public endpoint)"
for tool in aws go openssl jq; do command -v "$tool" >/dev/null || die "$tool not found"; done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
TAG=${TAG:-$(git rev-parse --short HEAD 2>/dev/null || echo latest)}
NAME="$STACK-$ENV"
SECRETS="$NAME" # Secrets Manager prefix
PREFIX="artcafe-$ENV-" # DYNAMODB_TABLE_PREFIX
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
REPO="$REGISTRY/artcafe-pubsub"
BUCKET="$NAME-config-$ACCOUNT"
COMPONENTS=(gateway tenant agent sshkey channel usage)
awsr() { aws --region "$REGION" "$@"; }

# The committed NATS configs must be what the permission source generates.
go run ./scripts/natsconf write -dir "$(mktemp -d)" # compiles the generator
git diff --quiet -- infra/nats || echo "deploy.sh: warning: infra/nats has local changes"

echo "== secrets ($SECRETS/...)"
secret_exists() { awsr secretsmanager describe-secret --secret-id "$1" >/dev/null 2>&1; }
put_secret() { # name value: created once, never overwritten (rotate by deleting it)
	secret_exists "$1" || awsr secretsmanager create-secret --name "$1" --secret-string "$2" >/dev/null
}
if ! secret_exists "$SECRETS/nats/seed/gateway"; then
	env_lines=$(go run ./scripts/natsconf env)
	for c in "${COMPONENTS[@]}"; do
		up=$(tr '[:lower:]' '[:upper:]' <<<"$c")
		seed=$(sed -n "s/^NATS_SEED_$up=//p" <<<"$env_lines")
		pub=$(sed -n "s/^NATS_NKEY_$up=//p" <<<"$env_lines")
		put_secret "$SECRETS/nats/seed/$c" "$seed"
		put_secret "$SECRETS/nats/nkey/$c" "$pub"
	done
	unset env_lines seed
fi
declare -A NKEY
for c in "${COMPONENTS[@]}"; do
	NKEY[$c]=$(awsr secretsmanager get-secret-value --secret-id "$SECRETS/nats/nkey/$c" --query SecretString --output text)
done
if ! secret_exists "$SECRETS/nats/tls"; then
	tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=$NAME NATS CA" \
		-keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=nats.artcafe.internal" \
		-keyout "$tmp/key.pem" -out "$tmp/req.pem" 2>/dev/null
	printf 'subjectAltName=DNS:nats-1.artcafe.internal,DNS:nats-2.artcafe.internal,DNS:nats-3.artcafe.internal\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tmp/ext"
	openssl x509 -req -in "$tmp/req.pem" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial -days 825 \
		-extfile "$tmp/ext" -out "$tmp/cert.pem" 2>/dev/null
	put_secret "$SECRETS/nats/tls" "$(jq -n --rawfile ca "$tmp/ca.pem" --rawfile cert "$tmp/cert.pem" --rawfile key "$tmp/key.pem" '{ca: $ca, cert: $cert, key: $key}')"
	put_secret "$SECRETS/nats/tls-ca" "$(cat "$tmp/ca.pem")"
	rm -rf "$tmp"; trap - EXIT
fi

echo "== NATS configs → s3://$BUCKET/$ENV/nats/"
awsr s3api head-bucket --bucket "$BUCKET" 2>/dev/null || {
	if [[ "$REGION" == us-east-1 ]]; then awsr s3api create-bucket --bucket "$BUCKET" >/dev/null
	else awsr s3api create-bucket --bucket "$BUCKET" --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null; fi
	awsr s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
		BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
}
awsr s3 sync --delete infra/nats "s3://$BUCKET/$ENV/nats/" --exclude '*' --include '*.conf'

if [[ $SKIP_PACKAGE == 0 ]]; then
	echo "== images $REPO/<component>:$TAG"
	command -v docker >/dev/null || die "docker not found (or use --skip-package)"
	VERSION=$(sed -n 's/^VERSION ?= //p' Makefile)
	awsr ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY"
	for c in "${COMPONENTS[@]}"; do
		awsr ecr describe-repositories --repository-names "artcafe-pubsub/$c" >/dev/null 2>&1 ||
			awsr ecr create-repository --repository-name "artcafe-pubsub/$c" --image-scanning-configuration scanOnPush=true >/dev/null
		docker build --build-arg BIN="$c" --build-arg VERSION="$VERSION" \
			--build-arg GIT_SHA="$TAG" -t "$REPO/$c:$TAG" .
		docker push "$REPO/$c:$TAG"
	done
fi

deploy() { # stack template params...
	local stack=$1 template=$2; shift 2
	echo "== $stack ($template)"
	awsr cloudformation deploy --stack-name "$stack" --template-file "infra/$template" \
		--capabilities CAPABILITY_IAM --no-fail-on-empty-changeset --parameter-overrides "$@"
}
deploy "$NAME-network" network.yaml "VpcCidr=10.40.0.0/16"
deploy "$NAME-dynamodb" dynamodb.yaml "TablePrefix=$PREFIX"
deploy "$NAME-nats" nats-cluster.yaml "NetworkStack=$NAME-network" "NatsInstanceType=$NATS_TYPE" \
	"ConfigBucket=$BUCKET" "ConfigPrefix=$ENV" "SecretsPrefix=$SECRETS" \
	"NKeyGateway=${NKEY[gateway]}" "NKeyTenant=${NKEY[tenant]}" "NKeyAgent=${NKEY[agent]}" \
	"NKeySSHKey=${NKEY[sshkey]}" "NKeyChannel=${NKEY[channel]}" "NKeyUsage=${NKEY[usage]}"
counts=()
for c in Gateway Tenant Agent SSHKey Channel Usage; do counts+=("${c}Count=$REPLICAS"); done
deploy "$NAME-services" services.yaml "NetworkStack=$NAME-network" "TablePrefix=$PREFIX" "SecretsPrefix=$SECRETS" \
	"ImageRepository=$REPO" "ImageTag=$TAG" "CertificateArn=$CERT_ARN" "ApiInstanceType=$API_TYPE" \
	"ApiInstanceCount=$API_COUNT" "${counts[@]}"

url=$(awsr cloudformation describe-stacks --stack-name "$NAME-services" --query "Stacks[0].Outputs[?OutputKey=='ApiURL'].OutputValue" --output text)
echo "== done: $url (point your certificate's DNS name at the load balancer)"
