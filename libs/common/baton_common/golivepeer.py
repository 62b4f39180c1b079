"""Names of go-livepeer's command-line flags, so its configuration files carry over to Baton.

Read from go-livepeer's ``cmd/livepeer/starter/flags.go`` (``NewLivepeerConfig``),
plus the flags its ``main`` and glog add (``config``, ``v``, ``vmodule``,
``logtostderr``, ``alsologtostderr``). A config file key in this set that no Baton
setting takes is ignored with no error: it belongs to another service, or to a
role Baton does not play (gateway, transcoder). Any other unknown key stops
the service, so a typo is caught.
"""

from __future__ import annotations

__all__ = ["GO_LIVEPEER_FLAGS"]

GO_LIVEPEER_FLAGS = frozenset(
    """
    network rtmpAddr cliAddr httpAddr serviceAddr nodes verifierUrl verifierPath localVerify httpIngest
    orchAddr orchWebhookUrl extraNodes orchBlocklist orchMinLivepeerVersion selectRandFreq selectStakeWeight
    selectPriceWeight selectPriceExpFactor orchPerfStatsUrl region maxPricePerUnit maxPricePerCapability
    ignoreMaxPriceIfNeeded minPerfScore discoveryTimeout gatewayHost orchestrator transcoder gateway
    broadcaster orchSecret transcodingOptions maxAttempts maxSessions currentManifest nvidia netint
    testTranscoder hevcDecoding aiServiceRegistry aiWorker aiModels aiModelsDir aiRunnerImage aiVerboseLogs
    aiRunnerImageOverrides aiProcessingRetryTimeout aiRunnerContainersPerGPU aiMinRunnerVersion
    mediaMTXApiPassword liveAITrickleHostForRunner liveAIAuthApiKey liveAIHeartbeatURL liveAIHeartbeatHeaders
    liveAIHeartbeatInterval liveAIAuthWebhookUrl livePaymentInterval liveOutSegmentTimeout
    liveAICapRefreshModels liveAISaveNSegments ethAcctAddr ethPassword ethKeystorePath ethOrchAddr ethUrl
    transactionTimeout maxTransactionReplacements gasLimit minGasPrice maxGasPrice ethController
    initializeRound initializeRoundMaxDelay ticketEV maxFaceValue maxTicketEV maxTotalEV depositMultiplier
    ignoreSenderReserve pricePerUnit pixelsPerUnit priceFeedAddr autoAdjustPrice pricePerGateway
    pricePerBroadcaster blockPollingInterval redeemer redeemerAddr reward monitor metricsPerStream
    metricsClientIP metadataQueueUri metadataAmqpExchange metadataPublishTimeout datadir dataDir objectStore
    recordStore FVfailGsbucket FVfailGskey authWebhookUrl startupAvailabilityCheck kafkaBootstrapServers
    kafkaUser kafkaPassword kafkaGatewayTopic config v vmodule logtostderr alsologtostderr
    """.split()
)
