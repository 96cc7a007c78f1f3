package org.fhirbridge.testserver;

import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * HAPI's request validation, except for {@code $validate}: that operation validates its resource
 * itself and answers with the outcome, so checking the request body first would validate
 * everything twice and answer a resource with errors with 422 instead of its OperationOutcome.
 */
public class WriteValidatingInterceptor extends RequestValidatingInterceptor {

	@Override
	@Hook(Pointcut.SERVER_INCOMING_REQUEST_POST_PROCESSED)
	public boolean incomingRequestPostProcessed(
			RequestDetails theRequestDetails, HttpServletRequest theRequest, HttpServletResponse theResponse) {
		if ("$validate".equals(theRequestDetails.getOperation())) {
			return true;
		}
		return super.incomingRequestPostProcessed(theRequestDetails, theRequest, theResponse);
	}
}
